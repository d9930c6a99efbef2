/**
 * The model config: one JSON-serialisable object that describes an HVAE everywhere (TypeScript, C++, checkpoints,
 * the CLI and the PyTorch reference in bench/reference). ALGORITHM.md §2.9 and §2.10 give the two presets.
 */
import { HVAEError, optionError } from './errors.js';

/** The latent variable of one stage. */
export interface LatentConfig {
  /** `'conv'`: a feature map of `size` channels at the stage's output resolution; `'dense'`: a vector of `size`. */
  type: 'conv' | 'dense';
  /** Channels (conv) or features (dense). */
  size: number;
}

/** One bottom-up stage: residual blocks followed by a Gaussian latent. */
export interface StageConfig {
  /** Output channels of every residual block of the stage. */
  channels: number;
  /** Kernel size of each block, in bottom-up (encoder) order. Odd sizes only. */
  kernels: number[];
  /** Stride of each block (1 or 2), in bottom-up order. The decoder runs the same list reversed. */
  strides: number[];
  /** The stage's latent. */
  latent: LatentConfig;
}

/** Names of the built-in presets. */
export type PresetName = 'fashionmnist' | 'cifar10';

/** A complete model description. */
export interface HVAEConfig {
  /** The preset this config was made from, if any (informational). */
  preset?: string;
  /** Input image shape `[channels, height, width]`. */
  inputShape: [number, number, number];
  /** Stages from the bottom (z1, largest) to the top (zL). */
  stages: StageConfig[];
  /**
   * Output likelihood p(x|z): `'bernoulli'` (binarized grey images, 3x3 conv head after ReLU) or `'dlm'` (the
   * discretized logistic mixture of PixelCNN++ for 8-bit colour images in [0,1), 1x1 conv head without activation).
   */
  likelihood: 'bernoulli' | 'dlm';
  /** Mixture components of the `'dlm'` likelihood (10 in the paper). Ignored for `'bernoulli'`. */
  mixtureComponents: number;
  /**
   * Skip connections between blocks of equal shape (ALGORITHM.md §2.5, §8 item 1).
   * - `'reference'` (default): as the official code, where such skips are silently dropped, so the encoder is a
   *   plain chain and only generative blocks 1 and 2 of non-top stages receive skips. Needed for fixture parity.
   * - `'paper'`: the paper's stated architecture, where every skip is live (a 1x1 convolution where shapes match).
   */
  skipConnections: 'reference' | 'paper';
}

/** Options accepted wherever a config is built: a preset name plus overrides. */
export interface ConfigInput extends Partial<Omit<HVAEConfig, 'stages'>> {
  /** Start from this preset; fields given here override it. */
  preset?: PresetName | string;
  /** Stages (replaces the preset's). */
  stages?: StageConfig[];
  /** Shortcut: set every stage's block channels (e.g. 32 for the small natural-image fixture model). */
  channels?: number;
}

const PRESETS: Record<PresetName, HVAEConfig> = {
  fashionmnist: {
    preset: 'fashionmnist',
    inputShape: [1, 28, 28],
    stages: [
      { channels: 64, kernels: [5, 5, 5], strides: [1, 1, 2], latent: { type: 'conv', size: 8 } },
      { channels: 64, kernels: [3, 3, 3], strides: [1, 1, 2], latent: { type: 'dense', size: 16 } },
      { channels: 64, kernels: [3, 3, 3], strides: [1, 1, 1], latent: { type: 'dense', size: 8 } },
    ],
    likelihood: 'bernoulli',
    mixtureComponents: 10,
    skipConnections: 'reference',
  },
  cifar10: {
    preset: 'cifar10',
    inputShape: [3, 32, 32],
    stages: [
      { channels: 256, kernels: [5, 5, 5], strides: [1, 1, 2], latent: { type: 'conv', size: 128 } },
      { channels: 256, kernels: [3, 3, 3], strides: [1, 1, 2], latent: { type: 'conv', size: 64 } },
      { channels: 256, kernels: [3, 3, 3], strides: [1, 1, 2], latent: { type: 'dense', size: 32 } },
    ],
    likelihood: 'dlm',
    mixtureComponents: 10,
    skipConnections: 'reference',
  },
};

/** The names of the built-in presets. */
export const presetNames: readonly PresetName[] = Object.keys(PRESETS) as PresetName[];

/** Returns a deep copy of a preset's config. */
export function preset(name: PresetName | string): HVAEConfig {
  const p = typeof name === 'string' && Object.prototype.hasOwnProperty.call(PRESETS, name)
    ? (PRESETS as Record<string, HVAEConfig>)[name] : undefined;
  if (!p) optionError(`unknown preset ${JSON.stringify(name)}; known presets: ${presetNames.join(', ')}`);
  return JSON.parse(JSON.stringify(p)) as HVAEConfig;
}

const CONFIG_KEYS = new Set(['preset', 'inputShape', 'stages', 'likelihood', 'mixtureComponents', 'skipConnections', 'channels']);

function isInt(v: unknown, min = 1): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min;
}

/** Spatial size after a stride-s "same" conv (ALGORITHM.md §2.2): ceil(n / s). */
function down(n: number, s: number): number {
  return Math.ceil(n / s);
}

/**
 * Builds and validates a complete config from a preset name and/or overrides. Throws `ERR_HVAE_OPTION` naming the
 * offending field.
 */
export function resolveConfig(input: ConfigInput | HVAEConfig = {}): HVAEConfig {
  if (input === null || typeof input !== 'object') optionError('config must be an object');
  for (const k of Object.keys(input)) {
    if (!CONFIG_KEYS.has(k)) optionError(`unknown config key '${k}'; known keys: ${[...CONFIG_KEYS].join(', ')}`);
  }
  const base: HVAEConfig = input.preset !== undefined
    ? preset(input.preset) // throws for anything but a preset's name
    : input.stages
      ? { inputShape: [1, 28, 28], stages: [], likelihood: 'bernoulli', mixtureComponents: 10, skipConnections: 'reference' }
      : preset('fashionmnist');
  const cfg: HVAEConfig = {
    ...base,
    ...(input.preset !== undefined ? { preset: input.preset } : {}),
    ...(input.inputShape !== undefined ? { inputShape: [...input.inputShape] as [number, number, number] } : {}),
    ...(input.stages !== undefined ? { stages: JSON.parse(JSON.stringify(input.stages)) as StageConfig[] } : {}),
    ...(input.likelihood !== undefined ? { likelihood: input.likelihood } : {}),
    ...(input.mixtureComponents !== undefined ? { mixtureComponents: input.mixtureComponents } : {}),
    ...(input.skipConnections !== undefined ? { skipConnections: input.skipConnections } : {}),
  };
  const channels = (input as ConfigInput).channels;
  if (channels !== undefined) {
    if (!isInt(channels)) optionError(`channels must be a positive integer, got ${String(channels)}`);
    cfg.stages = cfg.stages.map((s) => ({ ...s, channels }));
  }
  validateConfig(cfg);
  return cfg;
}

/** Validates a complete config (shapes, kernels, strides, latents). Throws `ERR_HVAE_OPTION`. */
export function validateConfig(cfg: HVAEConfig): void {
  const shp = cfg.inputShape;
  if (!Array.isArray(shp) || shp.length !== 3 || !shp.every((v) => isInt(v))) {
    optionError(`inputShape must be [channels, height, width] of positive integers, got ${JSON.stringify(shp)}`);
  }
  if (cfg.likelihood !== 'bernoulli' && cfg.likelihood !== 'dlm') {
    optionError(`likelihood must be 'bernoulli' or 'dlm', got ${JSON.stringify(cfg.likelihood)}`);
  }
  if (cfg.likelihood === 'dlm') {
    if (shp[0] !== 3) optionError(`the 'dlm' likelihood models 3 colour channels; inputShape has ${shp[0]}`);
    if (!isInt(cfg.mixtureComponents)) optionError('mixtureComponents must be a positive integer');
  }
  if (cfg.skipConnections !== 'reference' && cfg.skipConnections !== 'paper') {
    optionError(`skipConnections must be 'reference' or 'paper', got ${JSON.stringify(cfg.skipConnections)}`);
  }
  if (!Array.isArray(cfg.stages) || cfg.stages.length < 1) optionError('stages must be a non-empty array');
  let h = shp[1];
  let w = shp[2];
  cfg.stages.forEach((s, i) => {
    const where = `stages[${i}]`;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) optionError(`${where} must be an object { channels, kernels, strides, latent }`);
    for (const key of Object.keys(s)) {
      if (!['channels', 'kernels', 'strides', 'latent'].includes(key)) optionError(`unknown key '${key}' in ${where}; known keys: channels, kernels, strides, latent`);
    }
    if (!isInt(s.channels)) optionError(`${where}.channels must be a positive integer`);
    if (!Array.isArray(s.kernels) || s.kernels.length < 1) optionError(`${where}.kernels must be a non-empty array`);
    if (!Array.isArray(s.strides) || s.strides.length !== s.kernels.length) {
      optionError(`${where}.strides must have one entry per kernel (${s.kernels.length})`);
    }
    s.kernels.forEach((k, j) => {
      if (!isInt(k) || k % 2 !== 1) optionError(`${where}.kernels[${j}] must be an odd positive integer, got ${k}`);
      const st = s.strides[j];
      if (st !== 1 && st !== 2) optionError(`${where}.strides[${j}] must be 1 or 2, got ${st}`);
      if (st === 2 && k < 2) optionError(`${where}: a stride-2 block needs a kernel of at least 3`);
      h = down(h, st);
      w = down(w, st);
    });
    if (!s.latent || (s.latent.type !== 'conv' && s.latent.type !== 'dense')) {
      optionError(`${where}.latent.type must be 'conv' or 'dense'`);
    }
    if (!isInt(s.latent.size)) optionError(`${where}.latent.size must be a positive integer`);
    if (i === cfg.stages.length - 1 && s.latent.type !== 'dense' && cfg.stages.length > 1) {
      // Allowed: a conv top latent simply has a feature-map N(0, I) prior.
    }
  });
  // Upsampling in the decoder must restore the encoder's sizes exactly (n -> 2n with the §2.2 crop).
  for (const [axis, size] of [['height', shp[1]], ['width', shp[2]]] as const) {
    let hh = size;
    for (const s of cfg.stages) {
      for (const st of s.strides) {
        if (st === 2 && hh % 2 !== 0) {
          throw new HVAEError('ERR_HVAE_OPTION',
            `a stride-2 block meets an odd ${axis} ${hh}; the transposed convolution of the decoder could not restore it`);
        }
        hh = down(hh, st);
      }
    }
  }
}

/** Latent shapes per stage (without the batch dimension), bottom to top. */
export function latentShapes(cfg: HVAEConfig): number[][] {
  let h = cfg.inputShape[1];
  let w = cfg.inputShape[2];
  return cfg.stages.map((s) => {
    for (const st of s.strides) {
      h = down(h, st);
      w = down(w, st);
    }
    return s.latent.type === 'conv' ? [s.latent.size, h, w] : [s.latent.size];
  });
}

/** Number of pixel dimensions D = C*H*W, used by bits/dim = -L / (D ln 2). */
export function dataDims(cfg: HVAEConfig): number {
  return cfg.inputShape[0] * cfg.inputShape[1] * cfg.inputShape[2];
}
