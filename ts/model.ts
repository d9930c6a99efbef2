/**
 * The public model class: a hierarchical VAE whose computation runs in the C++ addon. Every computing call
 * returns a Promise and runs on a worker thread; `*Sync` variants exist for use inside `worker_threads`.
 */
import { HVAEConfig, ConfigInput, PresetName, resolveConfig, dataDims, latentShapes } from './config.js';
import { HVAEError, fromNative, oneOf, optionError } from './errors.js';
import { loadNative, NativeModel, NativeScoreResult, NativeTensor, NativeAdamState } from './native.js';
import { readSafetensors, writeSafetensors, SafeTensor } from './safetensors.js';
import { ImageBatch, firstNonFinite, validateImageBatch } from './tensor.js';

/** A compute device: `'cpu'`, `'cuda'` (device 0) or `'cuda:N'`. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** How 8-bit input is turned into model input, on the model's device. */
export type InputTransform =
  /** uint8 input: `'binarize'` for Bernoulli models, `'dequantize'` for DLM models; float input: `'none'`. */
  | 'auto'
  /** Use float input as is. */
  | 'none'
  /** uint8 input: v / 255; float input is used as is (it is taken to be scaled already). */
  | 'scale'
  /** Bernoulli(v / 255), a fresh draw every call (dynamic binarization, ALGORITHM.md §1.2). */
  | 'binarize'
  /** (v / 255) > threshold. */
  | 'threshold'
  /** ((v / 255) * 255 + u) / 256 with u ~ U[0, 1) (the reference's 8-bit dequantization). */
  | 'dequantize';

/** Options of {@link HVAE.create}: a preset and/or config overrides, plus where to put the model. */
export interface CreateOptions extends ConfigInput {
  /** Compute device. Default `'cpu'`. `'cuda'` on a machine without CUDA throws `ERR_HVAE_DEVICE`. */
  device?: Device;
  /**
   * Seed of the initial weights and of the model's random stream (sampling, binarization, the data-dependent
   * initialisation). Default 0. A CPU model has a stream of its own. CUDA models share their device's default
   * generator, so seeding one CUDA model (here or with {@link HVAE.seed}) also moves the stream of other CUDA models on
   * that device.
   */
  seed?: number;
}

/** Options of {@link HVAE.scores}. */
export interface ScoreOptions {
  /**
   * The k of the bounds L>k (and scores LLR>k) to compute, each in 0..L. Default: every k in 0..L-1.
   * L>k replaces the k lowest latents by the conditional prior (paper eq. 5); L>0 is the ELBO.
   */
  k?: number[];
  /**
   * S: importance samples of the ELBO, L^S = log mean_s exp(ELBO_s) (with the reference's 1e-8 guard). Default 1;
   * at most {@link MAX_IMPORTANCE_SAMPLES} (100,000), as is S'.
   */
  importanceSamples?: number;
  /** S': importance samples of each L>k (the published evaluation uses 1). Default 1. */
  importanceSamplesAboveK?: number;
  /**
   * How the k lowest latents of L>k are set.
   * - `'mode'` (default, the official code): the conditional-prior means, with q(z_{k+1}) computed on the
   *   posterior-mean path (ALGORITHM.md §4.2).
   * - `'sample'` (the paper's definition): drawn from the conditional prior, with the encoder's chain sampled.
   */
  lowerLatents?: 'mode' | 'sample';
  /** Also compute the complementary bounds L<l (paper appendix E) for these l in 1..L. Default none. */
  belowL?: number[];
  /** Input transform; default `'auto'`. */
  transform?: InputTransform;
  /** Threshold of the `'threshold'` transform. Default 0.5. */
  threshold?: number;
  /**
   * Memory budget: rows of the stacked (samples x bounds x images) batch per chunk. Default 96 on CPU (measured
   * fastest: 52 vs 50 images/s at 512, and a third of the memory), 8192 on CUDA. Where one image's rows alone
   * exceed it (`importanceSamples` above `chunkRows`), each image runs in several passes over slices of its samples,
   * combined exactly as one pass would be (a streaming log-mean-exp), so the budget holds at any S; the estimates
   * then come from other random draws than a single pass would use.
   */
  chunkRows?: number;
  /** Return the S single-sample ELBOs as well. Default false. */
  returnElboSamples?: boolean;
  /**
   * Arithmetic of the convolutions and dense layers. `'float32'` (default) is the contract's. `'bfloat16'` runs
   * the layers in bfloat16 and keeps float32 between residual blocks (block outputs, residual sums, likelihoods,
   * KL): 1.8x faster on a CPU with AVX-512 BF16, at a measured cost in accuracy (main job: AUROCs within 0.008,
   * ELBOs about 0.2%; bench/RESULTS.md). Needs CUDA or a CPU with AVX-512 BF16 or AMX (`ERR_HVAE_DEVICE`
   * otherwise; see {@link HVAE.supportsBFloat16}).
   */
  precision?: 'float32' | 'bfloat16';
  /** Return log p(x|z) and the per-layer KL of each L>k. Default false. */
  details?: boolean;
  /** Test seam: per encoder layer, the standard-normal noise of every sampled row (see native/bounds.h). */
  _noise?: (NativeTensor | null)[];
}

/** Per-example scores of a batch. All arrays have one entry per image, in nats unless stated. */
export interface Scores {
  /** Number of images. */
  size: number;
  /** The ELBO L^S (importance-weighted with S samples; S = 1 gives the plain one-sample ELBO). Higher = more likely. */
  elbo: Float32Array;
  /** log p(x|z) of the ELBO, averaged over the S samples. */
  logLikelihood: Float32Array;
  /** The Monte Carlo KL of each latent layer z1..zL, averaged over the S samples. */
  kl: Float32Array[];
  /** -L^S / (D ln 2), D = C*H*W. */
  bitsPerDim: Float32Array;
  /** L>k for each requested k (L>0 is the ELBO with S' samples). Higher = more likely. */
  boundAboveK: Record<number, Float32Array>;
  /** LLR>k = L^S - L>k for each requested k. Higher = more out-of-distribution. */
  llr: Record<number, Float32Array>;
  /** L<l for each requested l (appendix E): latents l..L from the prior, the lower ones from the posterior. */
  boundBelowL: Record<number, Float32Array>;
  /** LLR>k<l = L<l - L>k (appendix E) for every requested k and l with k < l, keyed `${k},${l}`. */
  llrAboveKBelowL: Record<string, Float32Array>;
  /** The S single-sample ELBOs, shape [S, size], if requested. */
  elboSamples?: { data: Float32Array; shape: [number, number] };
  /** log p(x|z) and per-layer KL of each L>k (null for prior layers), if requested. */
  details?: Record<number, { logLikelihood: Float32Array; kl: (Float32Array | null)[] }>;
}

/** Options of {@link HVAE.generate}. */
export interface GenerateOptions {
  /** Images to reconstruct. Without images, `n` samples are drawn from the prior. */
  images?: ImageBatch;
  /** Number of prior samples (without images). Default 16. */
  n?: number;
  /** Latent reconstruction (paper Figure 1): the k lowest latents come from the conditional prior. Default 0. */
  k?: number;
  /** Use posterior means instead of samples for the posterior latents. Default false. */
  posteriorMean?: boolean;
  /** Lower latents from the conditional prior's mean (`'mode'`, default) or a sample (`'sample'`). */
  lowerLatents?: 'mode' | 'sample';
  /** Draw the output from p(x|z) instead of showing its mean. Default false. */
  sampleOutput?: boolean;
  /** Input transform of `images`. Default `'auto'`. */
  transform?: InputTransform;
}

/** Options of {@link HVAE.save}. */
export interface SaveOptions {
  /** Also store the Adam state and the random stream (what `resume` needs). Default false. */
  trainingState?: boolean;
  /** Extra string metadata stored in the file's header. */
  metadata?: Record<string, string>;
}

/** Options of {@link HVAE.load}. */
export interface LoadOptions {
  /** Device to load onto. Default `'cpu'`. */
  device?: Device;
  /**
   * The config, needed only for files without one: state dicts of the official PyTorch implementation converted
   * to safetensors (their tensor names are used as they are). A preset name or a config.
   */
  config?: ConfigInput | HVAEConfig | PresetName;
  /** Restore the optimizer state and random stream if the file has them. Default true. */
  trainingState?: boolean;
}

/** Options of one training step (see the training loop in ts/train.ts for the schedule). */
export interface TrainStepOptions {
  /** KL weight beta. Default 1. */
  beta?: number;
  /** Free nats lambda. Default 0. */
  freeNats?: number;
  /** Free-nats rule; default `'reference'`. See ALGORITHM.md §3.2. */
  freeNatsMode?: 'reference' | 'layer-total' | 'paper-era';
  /** Adam learning rate. Default 3e-4. */
  lr?: number;
  /** Adam beta1. Default 0.9. */
  beta1?: number;
  /** Adam beta2. Default 0.999. */
  beta2?: number;
  /** Adam epsilon. Default 1e-8. */
  eps?: number;
  /** Take the optimizer step. Default true. */
  step?: boolean;
  /** Return every parameter's gradient. Default false. */
  collectGrads?: boolean;
  /** Skip a batch whose loss is not finite instead of failing. Default false. */
  skipNonFinite?: boolean;
  /** Input transform. Default `'auto'`. */
  transform?: InputTransform;
  /**
   * Arithmetic of the convolutions and dense layers in the forward pass and its backward. `'float32'` (default)
   * is the contract's. `'bfloat16'` is mixed precision: the layers compute in bfloat16 from float32 master weights
   * (cast on every step), and the likelihood, KL, loss, gradients and Adam stay float32; faster on a CPU with
   * AVX-512 BF16 or AMX and on CUDA (`ERR_HVAE_DEVICE` elsewhere). Its effect on training is measured in
   * bench/RESULTS.md.
   */
  precision?: 'float32' | 'bfloat16';
  /** Test seam, as ScoreOptions._noise. */
  _noise?: (NativeTensor | null)[];
}

/** Result of one training step. */
export interface TrainStepResult {
  /** Per-example loss (-log p(x|z) + beta * clamped KL). */
  loss: Float32Array;
  /** Per-example ELBO (raw KL). */
  elbo: Float32Array;
  /** Per-example log p(x|z). */
  logLikelihood: Float32Array;
  /** Per-layer per-example KL. */
  kl: Float32Array[];
  /** Mean loss over the batch (what was minimised). */
  lossMean: number;
  /** Mean ELBO over the batch. */
  elboMean: number;
  /** The batch was skipped because its loss was not finite (with `skipNonFinite`). */
  skipped: boolean;
  /** This step performed the data-dependent initialisation. */
  initialised: boolean;
  /** Gradients by parameter name (with `collectGrads`). */
  grads?: Record<string, { data: Float32Array; shape: number[] }>;
}

const LOAD_KEYS = new Set(['device', 'config', 'trainingState']);
const GENERATE_KEYS = new Set(['images', 'n', 'k', 'posteriorMean', 'lowerLatents', 'sampleOutput', 'transform']);
const TRAIN_STEP_KEYS = new Set(['beta', 'freeNats', 'freeNatsMode', 'lr', 'beta1', 'beta2', 'eps', 'step', 'collectGrads',
  'skipNonFinite', 'transform', 'precision', '_noise']);
const SCORE_KEYS = new Set(['k', 'importanceSamples', 'importanceSamplesAboveK', 'lowerLatents', 'belowL', 'transform',
  'threshold', 'chunkRows', 'returnElboSamples', 'details', 'precision', '_noise']);
/** The values of {@link InputTransform}, {@link TrainStepOptions.freeNatsMode}, `lowerLatents` and `precision`. */
export const INPUT_TRANSFORMS: readonly InputTransform[] = ['auto', 'none', 'scale', 'binarize', 'threshold', 'dequantize'];
export const FREE_NATS_MODES = ['reference', 'layer-total', 'paper-era'] as const;
const LOWER_LATENTS = ['mode', 'sample'] as const;
export const PRECISIONS = ['float32', 'bfloat16'] as const;

/** `options` must be a plain object (or undefined, giving `{}`): `ERR_HVAE_OPTION` for null, strings, arrays. */
export function optionsObject<T extends object>(options: T | undefined, what: string): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    optionError(`${what} options must be an object, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`);
  }
  return options;
}

function checkKeys(opts: object, keys: Set<string>, what: string): void {
  for (const k of Object.keys(opts)) {
    if (!keys.has(k)) optionError(`unknown ${what} option '${k}'; known: ${[...keys].filter((x) => !x.startsWith('_')).join(', ')}`);
  }
}

/** The largest count the addon takes (a C++ int). */
const MAX_INT32 = 2 ** 31 - 1;

function positiveInt(v: unknown, name: string, max = MAX_INT32): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) optionError(`${name} must be an integer >= 1, got ${String(v)}`);
  if (v > max) optionError(`${name} must be at most ${max}, got ${v}`);
  return v;
}

/**
 * The most importance samples a call takes: far above the paper's 1000, low enough that a slip (1e9) is refused
 * rather than starting a computation of days that cannot be cancelled.
 */
export const MAX_IMPORTANCE_SAMPLES = 100_000;

function optionalBoolean(v: unknown, name: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') optionError(`${name} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function finiteNumber(v: unknown, name: string, ok: (x: number) => boolean, range: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) optionError(`${name} must be a finite number ${range}, got ${String(v)}`);
  return v;
}

/** Names in official checkpoints that are not parameters here (ALGORITHM.md §2.12, fixtures README §2.1). */
function isOfficialExtra(name: string, numLayers: number): boolean {
  return name.endsWith('.initialized') || name.includes('.std_activation_inverse.') || name.endsWith('.prior_logits') ||
    name.startsWith(`stages.${numLayers - 1}.q_projection.`);
}

function asConfigInput(c: ConfigInput | HVAEConfig | PresetName): ConfigInput | HVAEConfig {
  return typeof c === 'string' ? { preset: c } : c;
}

const FORMAT = 'hvae-native';
const FORMAT_VERSION = '1';

/** Parses a device string, throwing `ERR_HVAE_DEVICE` for malformed ones. */
export function validateDevice(device: unknown): Device {
  if (device === undefined) return 'cpu';
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(device)) {
    throw new HVAEError('ERR_HVAE_DEVICE', `invalid device ${JSON.stringify(device)}; use 'cpu', 'cuda' or 'cuda:N'`);
  }
  return device as Device;
}

/** The kind of a device: `'cpu'` or `'cuda'` (any index). */
export function deviceKind(device: Device): 'cpu' | 'cuda' {
  return device.startsWith('cuda') ? 'cuda' : 'cpu';
}

/**
 * Whether a checkpoint's RNG state (`rng.state`, `bytes` long, with the checkpoint's metadata) can be restored on
 * `model`'s device: it must come from a generator of the same kind (metadata `rngDevice`; files written before it
 * was recorded are from the CPU) and have the length of this model's generator state. Training resumed across
 * devices (CPU to CUDA, say) restores weights, optimizer and data order exactly, and reseeds the generator.
 */
export function rngStateFits(metadata: Record<string, string>, bytes: number, model: HVAE): boolean {
  const saved = metadata.rngDevice === 'cuda' ? 'cuda' : 'cpu';
  if (saved !== deviceKind(model.device)) return false;
  return model.nativeModel().getRngState().length === bytes;
}

/** A seed of the model's random stream must be a non-negative integer (`ERR_HVAE_OPTION` otherwise). */
function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) optionError(`seed must be a non-negative integer below 2^53, got ${seed}`);
}

/**
 * A hierarchical VAE (ALGORITHM.md §2) for likelihood-ratio OOD detection.
 *
 * ```ts
 * const model = HVAE.create({ preset: 'fashionmnist' });
 * const s = await model.scores({ data, shape: [n, 1, 28, 28] }, { k: [0, 1, 2], importanceSamples: 16 });
 * s.llr[1]; // LLR>1 per image: higher = more out-of-distribution
 * ```
 */
export class HVAE {
  /** The model's config (JSON-serialisable; the same object describes it in checkpoints and the CLI). */
  readonly config: HVAEConfig;
  /** The device the model lives on. */
  readonly device: Device;
  private native: NativeModel | null;
  private rngRestored = false;

  private constructor(config: HVAEConfig, device: Device, native: NativeModel) {
    this.config = config;
    this.device = device;
    this.native = native;
  }

  /** Builds a new model (random weights; data-dependent initialisation happens on the first training step). */
  static create(options: CreateOptions = {}): HVAE {
    const { device: dev, seed, ...cfgInput } = optionsObject(options, 'HVAE.create');
    const device = validateDevice(dev);
    if (seed !== undefined) checkSeed(seed);
    const config = resolveConfig(cfgInput);
    const addon = loadNative();
    let native: NativeModel;
    try {
      native = new addon.NativeModel(config, { device, seed: seed ?? 0 });
    } catch (e) {
      throw fromNative(e);
    }
    return new HVAE(config, device, native);
  }

  /**
   * Loads a model from a safetensors file: either a checkpoint written by {@link HVAE.save} (config in the
   * metadata) or an official PyTorch state dict converted to safetensors (pass `config`). Missing, extra or
   * misshapen tensors are reported all at once as `ERR_HVAE_FORMAT`.
   */
  static load(file: string, options: LoadOptions = {}): HVAE {
    if (typeof file !== 'string' || file === '') optionError(`HVAE.load needs a file path (a non-empty string), got ${typeof file === 'string' ? "''" : typeof file}`);
    checkKeys(optionsObject(options, 'HVAE.load'), LOAD_KEYS, 'HVAE.load');
    const { tensors, metadata } = readSafetensors(file);
    let config: HVAEConfig;
    const official = metadata.format !== FORMAT;
    if (!official) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(metadata.config);
      } catch (e) {
        throw new HVAEError('ERR_HVAE_FORMAT', `${file}: the checkpoint's config metadata is not valid JSON`, { cause: e });
      }
      try {
        config = resolveConfig(parsed as HVAEConfig);
      } catch (e) {
        throw new HVAEError('ERR_HVAE_FORMAT', `${file}: the checkpoint's config is invalid: ${(e as Error).message}`, { cause: e });
      }
      if (options.config) config = resolveConfig(asConfigInput(options.config));
    } else {
      if (!options.config) {
        throw new HVAEError('ERR_HVAE_FORMAT',
          `${file} has no hvae-native config in its metadata (an official state dict?); pass { config: 'fashionmnist' } or a config`);
      }
      config = resolveConfig(asConfigInput(options.config));
    }
    const model = HVAE.create({ ...config, device: options.device });
    const L = config.stages.length;
    const weights: Record<string, NativeTensor> = {};
    for (const [name, t] of tensors) {
      if (name.startsWith('optim.') || name.startsWith('rng.') || name.startsWith('extra.')) continue;
      if (official && isOfficialExtra(name, L)) continue;
      if (t.dtype !== 'F32') {
        model.dispose();
        throw new HVAEError('ERR_HVAE_FORMAT', `${file}: tensor '${name}' is ${t.dtype}, expected F32`);
      }
      const data = t.data as Float32Array;
      const bad = firstNonFinite(data);
      if (bad >= 0) {
        model.dispose();
        throw new HVAEError('ERR_HVAE_FORMAT', `${file}: tensor '${name}' holds ${data[bad]} at index ${bad}; a checkpoint's weights must be finite`);
      }
      weights[name] = { data, shape: t.shape };
    }
    try {
      model.nativeModel().setState(weights);
    } catch (e) {
      model.dispose();
      const err = fromNative(e);
      throw new HVAEError(err.code, `${file}: ${err.message}`, { cause: err });
    }
    if (options.trainingState !== false && !official) {
      try {
        model.restoreTrainingState(tensors, metadata, file);
      } catch (e) {
        model.dispose();
        throw e;
      }
    }
    return model;
  }

  /** Reads only the metadata of a checkpoint (config, training progress, calibration). */
  static readMetadata(file: string): Record<string, string> {
    return readSafetensors(file).metadata;
  }

  /** Saves weights and config (and optionally the optimizer and RNG state) to a safetensors file, atomically. */
  save(file: string, options: SaveOptions = {}): void {
    const native = this.nativeModel();
    const tensors = new Map<string, { shape: number[]; data: SafeTensor['data'] }>();
    for (const [name, t] of Object.entries(native.getState())) tensors.set(name, t);
    if (options.trainingState) {
      const opt = native.getOptimizerState();
      const steps: Record<string, number> = {};
      for (const [name, s] of Object.entries(opt)) {
        tensors.set(`optim.${name}.exp_avg`, s.expAvg);
        tensors.set(`optim.${name}.exp_avg_sq`, s.expAvgSq);
        steps[name] = s.step;
      }
      const rng = native.getRngState();
      tensors.set('rng.state', { shape: [rng.length], data: rng });
      options = {
        ...options,
        metadata: { ...options.metadata, optimizerSteps: JSON.stringify(steps), rngDevice: deviceKind(this.device) },
      };
    }
    const metadata: Record<string, string> = {
      ...options.metadata,
      format: FORMAT,
      formatVersion: FORMAT_VERSION,
      config: JSON.stringify(this.config),
    };
    writeSafetensors(file, tensors, metadata);
  }

  private restoreTrainingState(tensors: Map<string, SafeTensor>, metadata: Record<string, string>, file: string): void {
    const native = this.nativeModel();
    const opt: Record<string, NativeAdamState> = {};
    let steps: Record<string, number> = {};
    for (const [name, t] of tensors) {
      const m = /^optim\.(.+)\.exp_avg$/.exec(name);
      if (!m) continue;
      const sq = tensors.get(`optim.${m[1]}.exp_avg_sq`);
      if (!sq) throw new HVAEError('ERR_HVAE_FORMAT', `${file}: optimizer state of '${m[1]}' lacks exp_avg_sq`);
      opt[m[1]] = { step: 0, expAvg: { data: t.data as Float32Array, shape: t.shape }, expAvgSq: { data: sq.data as Float32Array, shape: sq.shape } };
    }
    if (Object.keys(opt).length) {
      try {
        steps = JSON.parse(metadata.optimizerSteps ?? '{}') as Record<string, number>;
      } catch { steps = {}; }
      for (const k of Object.keys(opt)) opt[k].step = steps[k] ?? 0;
      try { native.setOptimizerState(opt); } catch (e) { throw fromNative(e); }
    }
    const rng = tensors.get('rng.state');
    // A generator's state only fits a generator of the same kind (a CPU one is 5,056 bytes, a CUDA one a seed and
    // an offset): across devices it is left out, and the model keeps its seeded generator (see rngStateFits).
    if (rng && rngStateFits(metadata, rng.data.length, this)) {
      try {
        native.setRngState(rng.data as Uint8Array);
      } catch (e) {
        throw new HVAEError('ERR_HVAE_FORMAT', `${file}: the saved random-generator state (rng.state) is corrupt: ${fromNative(e).message}`, { cause: e });
      }
      this.rngRestored = true;
    }
  }

  /**
   * Whether {@link HVAE.load} restored the checkpoint's RNG state: false for files without training state and for
   * one saved on another kind of device (its generator state does not fit this one's).
   */
  get rngStateRestored(): boolean {
    return this.rngRestored;
  }

  /** The number of parameters. */
  get numParameters(): number {
    return this.nativeModel().info().numParameters;
  }

  /** Parameter names and shapes (the official implementation's names). */
  parameters(): { name: string; shape: number[] }[] {
    return this.nativeModel().info().parameters;
  }

  /** Whether the weights are initialised (loaded, or data-dependent init done). */
  get initialized(): boolean {
    return this.nativeModel().info().initialized;
  }

  /**
   * Whether this model's device runs `precision: 'bfloat16'` scoring natively: always on CUDA; on CPU only with
   * AVX-512 BF16 or AMX.
   */
  get supportsBFloat16(): boolean {
    this.nativeModel(); // ERR_HVAE_DISPOSED after dispose(), as every other member
    return this.device !== 'cpu' || loadNative().versions().cpuBFloat16;
  }

  /** Number of latent layers L. */
  get numLayers(): number {
    return this.config.stages.length;
  }

  /** Latent shapes, bottom to top. */
  get latentShapes(): number[][] {
    return latentShapes(this.config);
  }

  /** A copy of all weights by name. */
  getState(): Record<string, { data: Float32Array; shape: number[] }> {
    return this.nativeModel().getState();
  }

  /** Replaces all weights (every parameter must be given with its exact shape). */
  setState(state: Record<string, NativeTensor>): void {
    if (state === null || typeof state !== 'object') optionError('setState needs { [name]: { data, shape } }');
    for (const [name, t] of Object.entries(state)) {
      const data = t?.data;
      const bad = data instanceof Float32Array ? firstNonFinite(data) : -1;
      if (bad >= 0) throw new HVAEError('ERR_HVAE_NONFINITE', `setState: '${name}' holds ${data[bad]} at index ${bad}; weights must be finite`);
    }
    try { this.nativeModel().setState(state); } catch (e) { throw fromNative(e); }
  }

  /** Re-seeds the model's random stream (a non-negative integer, else `ERR_HVAE_OPTION`). */
  seed(seed: number): void {
    checkSeed(seed);
    this.nativeModel().seed(seed);
  }

  /**
   * Data-dependent initialisation (§2.4) on a batch, without training. The batch needs at least 2 images (each unit
   * is normalised over it), else `ERR_HVAE_SHAPE`; the draws come from the model's own seeded stream.
   */
  async initialize(images: ImageBatch, options: { transform?: InputTransform } = {}): Promise<void> {
    const batch = validateImageBatch(images, this.config.inputShape);
    try { await this.nativeModel().initialize(batch, options); } catch (e) { throw fromNative(e); }
  }

  private scoreArgs(images: ImageBatch, options: ScoreOptions): [NativeTensor, object, number[]] {
    checkKeys(optionsObject(options, 'scores'), SCORE_KEYS, 'scores');
    const batch = validateImageBatch(images, this.config.inputShape);
    const L = this.numLayers;
    const ks = options.k ?? Array.from({ length: L }, (_, i) => i);
    if (!Array.isArray(ks)) optionError('k must be an array of integers');
    for (const k of ks) {
      if (!Number.isInteger(k) || k < 0 || k > L) optionError(`k = ${String(k)} is out of range: this model has ${L} latent layers, so k must be in 0..${L}`);
    }
    const ls = options.belowL ?? [];
    if (!Array.isArray(ls)) optionError(`belowL must be an array of integers in 1..${L}, got ${JSON.stringify(ls)}`);
    for (const l of ls) {
      if (!Number.isInteger(l) || l < 1 || l > L) optionError(`belowL = ${String(l)} is out of range 1..${L}`);
    }
    const S = positiveInt(options.importanceSamples ?? 1, 'importanceSamples', MAX_IMPORTANCE_SAMPLES);
    const S2 = positiveInt(options.importanceSamplesAboveK ?? 1, 'importanceSamplesAboveK', MAX_IMPORTANCE_SAMPLES);
    const lower = oneOf(options.lowerLatents, LOWER_LATENTS, 'lowerLatents', 'mode');
    const transform = oneOf(options.transform, INPUT_TRANSFORMS, 'transform', 'auto');
    const chunkRows = positiveInt(options.chunkRows ?? (this.device === 'cpu' ? 96 : 8192), 'chunkRows');
    const precision = oneOf(options.precision, PRECISIONS, 'precision', 'float32');
    const threshold = finiteNumber(options.threshold ?? 0.5, 'threshold', (t) => t >= 0 && t < 1, 'in [0, 1)');
    const returnElboSamples = optionalBoolean(options.returnElboSamples, 'returnElboSamples');
    optionalBoolean(options.details, 'details');
    const native = {
      ks, ls, importanceSamples: S, importanceSamplesAboveK: S2, lowerLatents: lower, transform, precision,
      threshold, chunkRows, returnElboSamples,
      ...(options._noise ? { noise: options._noise } : {}),
    };
    return [batch, native, ks];
  }

  private buildScores(r: NativeScoreResult, ks: number[], details: boolean): Scores {
    const n = r.elbo.length;
    const D = dataDims(this.config);
    const bpd = new Float32Array(n);
    for (let i = 0; i < n; i++) bpd[i] = -r.elbo[i] / (D * Math.LN2);
    const boundAboveK: Record<number, Float32Array> = {};
    const llr: Record<number, Float32Array> = {};
    for (const k of ks) {
      const b = r.aboveK[String(k)];
      boundAboveK[k] = b;
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = r.elbo[i] - b[i]; // float32 subtraction, as in the reference
      llr[k] = d;
    }
    const boundBelowL: Record<number, Float32Array> = {};
    const llrAboveKBelowL: Record<string, Float32Array> = {};
    for (const [l, v] of Object.entries(r.belowL)) {
      boundBelowL[Number(l)] = v;
      for (const k of ks) {
        if (k >= Number(l)) continue;
        const d = new Float32Array(n);
        for (let i = 0; i < n; i++) d[i] = v[i] - boundAboveK[k][i];
        llrAboveKBelowL[`${k},${l}`] = d;
      }
    }
    const out: Scores = {
      size: n,
      elbo: r.elbo,
      logLikelihood: r.elboLogLikelihood,
      kl: r.elboKl.map((k) => k ?? new Float32Array(n)),
      bitsPerDim: bpd,
      boundAboveK,
      llr,
      boundBelowL,
      llrAboveKBelowL,
    };
    if (r.elboSamples) out.elboSamples = { data: r.elboSamples.data, shape: r.elboSamples.shape as [number, number] };
    if (details) {
      out.details = {};
      for (const k of ks) out.details[k] = { logLikelihood: r.aboveKLogLikelihood[String(k)], kl: r.aboveKKl[String(k)] };
    }
    return out;
  }

  /**
   * Every bound of the paper for a batch, in one call: the ELBO L^S, L>k and LLR>k for each k, optionally L<l.
   * All k and samples are computed together in stacked batches, sharing the first encoder stage, the
   * posterior-mean path and the S ELBO samples. Higher `llr` = more out-of-distribution.
   */
  async scores(images: ImageBatch, options: ScoreOptions = {}): Promise<Scores> {
    const [batch, opts, ks] = this.scoreArgs(images, options);
    let r: NativeScoreResult;
    try { r = await this.nativeModel().score(batch, opts); } catch (e) { throw fromNative(e); }
    return this.buildScores(r, ks, !!options.details);
  }

  /** Synchronous {@link HVAE.scores}, blocking the calling thread (for worker_threads). */
  scoresSync(images: ImageBatch, options: ScoreOptions = {}): Scores {
    const [batch, opts, ks] = this.scoreArgs(images, options);
    let r: NativeScoreResult;
    try { r = this.nativeModel().scoreSync(batch, opts); } catch (e) { throw fromNative(e); }
    return this.buildScores(r, ks, !!options.details);
  }

  /** The ELBO L^S per image (higher = more likely). */
  async elbo(images: ImageBatch, options: { importanceSamples?: number; transform?: InputTransform } = {}): Promise<Float32Array> {
    checkKeys(optionsObject(options, 'elbo'), new Set(['importanceSamples', 'transform']), 'elbo');
    return (await this.scores(images, { ...options, k: [] })).elbo;
  }

  private generateArgs(options: GenerateOptions): object {
    checkKeys(optionsObject(options, 'generate'), GENERATE_KEYS, 'generate');
    const o: Record<string, unknown> = {};
    if (options.images) o.images = validateImageBatch(options.images, this.config.inputShape);
    o.n = positiveInt(options.n ?? 16, 'n');
    const k = options.k ?? 0;
    if (!Number.isInteger(k) || k < 0 || k > this.numLayers) optionError(`k must be in 0..${this.numLayers}`);
    o.k = k;
    o.posteriorMean = optionalBoolean(options.posteriorMean, 'posteriorMean');
    o.lowerLatents = oneOf(options.lowerLatents, LOWER_LATENTS, 'lowerLatents', 'mode');
    o.sampleOutput = optionalBoolean(options.sampleOutput, 'sampleOutput');
    o.transform = oneOf(options.transform, INPUT_TRANSFORMS, 'transform', 'auto');
    return o;
  }

  /**
   * Images from the model: prior samples (no `images`), reconstructions (`images`, k = 0) or latent
   * reconstructions with the k lowest latents from the conditional prior (paper Figure 1). Values in [0, 1].
   */
  async generate(options: GenerateOptions = {}): Promise<{ data: Float32Array; shape: [number, number, number, number] }> {
    const o = this.generateArgs(options);
    try {
      const r = await this.nativeModel().generate(o);
      return { data: r.data, shape: r.shape as [number, number, number, number] };
    } catch (e) { throw fromNative(e); }
  }

  /** Synchronous {@link HVAE.generate}. */
  generateSync(options: GenerateOptions = {}): { data: Float32Array; shape: [number, number, number, number] } {
    const o = this.generateArgs(options);
    try {
      const r = this.nativeModel().generateSync(o);
      return { data: r.data, shape: r.shape as [number, number, number, number] };
    } catch (e) { throw fromNative(e); }
  }

  /** `n` samples from the prior. */
  sample(n = 16): Promise<{ data: Float32Array; shape: [number, number, number, number] }> {
    return this.generate({ n });
  }

  /** Reconstructions of `images` (k = 0) or latent reconstructions (k > 0). */
  reconstruct(images: ImageBatch, k = 0, options: Omit<GenerateOptions, 'images' | 'k'> = {}): Promise<{ data: Float32Array; shape: [number, number, number, number] }> {
    return this.generate({ ...options, images, k });
  }

  private trainArgs(images: ImageBatch, options: TrainStepOptions): [NativeTensor, object] {
    checkKeys(optionsObject(options, 'trainStep'), TRAIN_STEP_KEYS, 'trainStep');
    const batch = validateImageBatch(images, this.config.inputShape);
    // Checked here: a NaN learning rate or an Adam beta of 1 would turn every weight into NaN without an error.
    if (options.beta !== undefined) finiteNumber(options.beta, 'beta', (v) => v >= 0, '>= 0');
    if (options.freeNats !== undefined) finiteNumber(options.freeNats, 'freeNats', (v) => v >= 0, '>= 0');
    if (options.lr !== undefined) finiteNumber(options.lr, 'lr', (v) => v > 0, '> 0');
    if (options.beta1 !== undefined) finiteNumber(options.beta1, 'beta1', (v) => v >= 0 && v < 1, 'in [0, 1)');
    if (options.beta2 !== undefined) finiteNumber(options.beta2, 'beta2', (v) => v >= 0 && v < 1, 'in [0, 1)');
    if (options.eps !== undefined) finiteNumber(options.eps, 'eps', (v) => v > 0, '> 0');
    for (const key of ['step', 'collectGrads', 'skipNonFinite'] as const) optionalBoolean(options[key], key);
    if (options.freeNatsMode !== undefined) oneOf(options.freeNatsMode, FREE_NATS_MODES, 'freeNatsMode');
    if (options.transform !== undefined) oneOf(options.transform, INPUT_TRANSFORMS, 'transform');
    if (options.precision !== undefined) oneOf(options.precision, PRECISIONS, 'precision');
    const o: Record<string, unknown> = { ...options };
    if (options._noise) { o.noise = options._noise; delete o._noise; }
    return [batch, o];
  }

  /**
   * One training step on a batch (forward, loss, backward, Adam), entirely in C++. The first step of an
   * uninitialised model initialises it on this batch, which then needs at least 2 images (`ERR_HVAE_SHAPE`).
   */
  async trainStep(images: ImageBatch, options: TrainStepOptions = {}): Promise<TrainStepResult> {
    const [batch, o] = this.trainArgs(images, options);
    try {
      const r = await this.nativeModel().trainStep(batch, o);
      return { ...r, kl: r.kl.map((k) => k ?? new Float32Array(r.loss.length)) };
    } catch (e) { throw fromNative(e); }
  }

  /** Synchronous {@link HVAE.trainStep}. */
  trainStepSync(images: ImageBatch, options: TrainStepOptions = {}): TrainStepResult {
    const [batch, o] = this.trainArgs(images, options);
    try {
      const r = this.nativeModel().trainStepSync(batch, o);
      return { ...r, kl: r.kl.map((k) => k ?? new Float32Array(r.loss.length)) };
    } catch (e) { throw fromNative(e); }
  }

  /**
   * Trains the model on a dataset with the paper's schedule (see {@link FitOptions}): Adam steps in C++, KL
   * warm-up and free nats, a held-out validation split, atomic best/last checkpoints, progress callbacks.
   */
  async fit(train: import('./data/stream.js').Dataset, options: import('./train.js').FitOptions = {}): Promise<import('./train.js').FitResult> {
    const { fit } = await import('./train.js');
    return fit(this, train, options);
  }

  /** Releases the native model. Later calls throw `ERR_HVAE_DISPOSED`; running calls finish. */
  dispose(): void {
    if (this.native) this.native.dispose();
    this.native = null;
  }

  /** @internal The native model (for the training loop and tests). */
  nativeModel(): NativeModel {
    if (!this.native) throw new HVAEError('ERR_HVAE_DISPOSED', 'the model was disposed');
    return this.native;
  }
}
