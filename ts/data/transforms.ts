/**
 * Deterministic CPU transforms on image batches (ALGORITHM.md §1.2). Random transforms — Bernoulli binarization and
 * dequantization noise — are not here: they run in C++ on the model's device, and the model receives uint8.
 *
 * All functions take and return NCHW batches and never modify their input.
 */
import sharp from 'sharp';
import { HVAEError } from '../errors.js';
import type { ImageBatch } from '../tensor.js';
import type { ResizeKernel } from './images.js';
import { Dataset, ImageShape, mapImages, U8ImageBatch } from './stream.js';

function dims(batch: ImageBatch, what: string): [number, number, number, number] {
  const s = batch?.shape;
  if (!Array.isArray(s) || s.length !== 4 || !s.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${what}: shape must be [n, c, h, w], got ${JSON.stringify(s)}`);
  }
  if (batch.data.length !== s[0] * s[1] * s[2] * s[3]) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${what}: shape ${JSON.stringify(s)} needs ${s[0] * s[1] * s[2] * s[3]} values, data has ${batch.data.length}`);
  }
  return s as [number, number, number, number];
}

/** `ToTensor`: uint8 v → v/255 as float32 in [0, 1] (a float batch is returned unchanged, as a copy). */
export function toFloat(batch: ImageBatch): ImageBatch & { data: Float32Array } {
  const s = dims(batch, 'toFloat');
  const out = new Float32Array(batch.data.length);
  if (batch.data instanceof Uint8Array) for (let i = 0; i < out.length; i++) out[i] = batch.data[i] / 255;
  else out.set(batch.data);
  return { data: out, shape: [...s] as [number, number, number, number] };
}

/** Options of {@link binarize}. */
export interface BinarizeOptions {
  /** Threshold in [0, 1] on the v/255 scale: pixels strictly above it become 1 (default 0.5). */
  threshold?: number;
  /** `'uint8'` (default): 0 or 255, still consumable as uint8 by the model; `'float32'`: 0 or 1. */
  output?: 'uint8' | 'float32';
}

/**
 * Fixed-threshold binarization (the reference's unused `Binarize(threshold)` mode; its training uses stochastic
 * Bernoulli binarization, which the model does on its device).
 */
export function binarize(batch: ImageBatch, options: BinarizeOptions = {}): ImageBatch {
  const s = dims(batch, 'binarize');
  const t = options.threshold ?? 0.5;
  if (typeof t !== 'number' || !(t >= 0 && t <= 1)) throw new HVAEError('ERR_HVAE_OPTION', `threshold must be a number in [0, 1], got ${JSON.stringify(options.threshold)}`);
  const scale = batch.data instanceof Uint8Array ? 1 / 255 : 1;
  const n = batch.data.length;
  if ((options.output ?? 'uint8') === 'float32') {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = batch.data[i] * scale > t ? 1 : 0;
    return { data: out, shape: [...s] as [number, number, number, number] };
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = batch.data[i] * scale > t ? 255 : 0;
  return { data: out, shape: [...s] as [number, number, number, number] };
}

/** Inversion for the paper's "Inverted" sets: uint8 v → 255 − v (float x → 1 − x). */
export function invert<T extends ImageBatch>(batch: T): T {
  const s = dims(batch, 'invert');
  const shape = [...s] as [number, number, number, number];
  if (batch.data instanceof Uint8Array) {
    const out = new Uint8Array(batch.data.length);
    for (let i = 0; i < out.length; i++) out[i] = 255 - batch.data[i];
    return { data: out, shape } as T;
  }
  const out = new Float32Array(batch.data.length);
  for (let i = 0; i < out.length; i++) out[i] = 1 - batch.data[i];
  return { data: out, shape } as T;
}

/** Luma weights for {@link greyscale}. */
export type GreyWeights = 'bt601' | 'bt709';

/**
 * RGB → grey. `'bt601'` (default) is PIL's `convert('L')` exactly (`(R*19595 + G*38470 + B*7471 + 0x8000) >> 16`);
 * `'bt709'` uses 0.2126/0.7152/0.0722 (the reference's grey variants apply these after dequantization, plus a gamma
 * step that belongs with the model's float transforms). 1-channel batches are returned as a copy; a 4th (alpha)
 * channel is ignored. Other channel counts are an `ERR_HVAE_SHAPE` error.
 */
export function greyscale(batch: U8ImageBatch, weights: GreyWeights = 'bt601'): U8ImageBatch {
  const [n, c, h, w] = dims(batch, 'greyscale');
  if (!(batch.data instanceof Uint8Array)) throw new HVAEError('ERR_HVAE_DTYPE', 'greyscale expects uint8 images');
  if (c === 1) return { data: batch.data.slice(), shape: [n, 1, h, w] };
  if (c !== 3 && c !== 4) throw new HVAEError('ERR_HVAE_SHAPE', `greyscale: images have ${c} channels; expected 1, 3 (RGB) or 4 (RGBA)`);
  const hw = h * w;
  const out = new Uint8Array(n * hw);
  for (let i = 0; i < n; i++) {
    const s = i * c * hw;
    for (let p = 0; p < hw; p++) {
      const r = batch.data[s + p], g = batch.data[s + hw + p], b = batch.data[s + 2 * hw + p];
      out[i * hw + p] = weights === 'bt709'
        ? Math.min(255, Math.round(0.2126 * r + 0.7152 * g + 0.0722 * b))
        : (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
    }
  }
  return { data: out, shape: [n, 1, h, w] };
}

/** Converts to `channels` (1 or 3): grey → RGB replicates the channel, RGB → grey uses {@link greyscale}. */
export function toChannels(batch: U8ImageBatch, channels: 1 | 3): U8ImageBatch {
  const [n, c, h, w] = dims(batch, 'toChannels');
  if (channels === c) return { data: batch.data.slice(), shape: [n, c, h, w] };
  if (channels === 1) return greyscale(batch);
  if (channels === 3 && c === 1) {
    const hw = h * w;
    const out = new Uint8Array(n * 3 * hw);
    for (let i = 0; i < n; i++) {
      const src = batch.data.subarray(i * hw, (i + 1) * hw);
      out.set(src, i * 3 * hw); out.set(src, i * 3 * hw + hw); out.set(src, i * 3 * hw + 2 * hw);
    }
    return { data: out, shape: [n, 3, h, w] };
  }
  throw new HVAEError('ERR_HVAE_SHAPE', `toChannels: cannot convert ${c}-channel images to ${channels} channels`);
}

/** Options of {@link resize}. */
export interface ResizeOptions {
  /**
   * sharp kernel (default `'linear'`). Use `'nearest'` for Omniglot28x28 and `'linear'` for SmallNORB28x28 (the
   * reference uses PIL's NEAREST and BILINEAR). PIL's BILINEAR downscale is a filtered (antialiased) resampling whose
   * coefficients differ slightly from libvips', so resized pixels can differ by a few levels from the reference's.
   */
  kernel?: ResizeKernel;
}

/**
 * Resizes every image to `[height, width]` with sharp (on the libuv thread pool). Supports 1–4 channels. Rejects
 * with `ERR_HVAE_OPTION` for a bad size and `ERR_HVAE_SHAPE` for other channel counts.
 */
export async function resize(batch: U8ImageBatch, size: [number, number], options: ResizeOptions = {}): Promise<U8ImageBatch> {
  const [n, c, h, w] = dims(batch, 'resize');
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0)) {
    throw new HVAEError('ERR_HVAE_OPTION', `resize size must be [height, width] of positive integers, got ${JSON.stringify(size)}`);
  }
  if (c < 1 || c > 4) throw new HVAEError('ERR_HVAE_SHAPE', `resize supports 1 to 4 channels, got ${c}`);
  const [H, W] = size;
  const hw = h * w;
  const HW = H * W;
  const out = new Uint8Array(n * c * HW);
  const kernel = options.kernel ?? 'linear';
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const src = batch.data.subarray(i * c * hw, (i + 1) * c * hw);
    const hwc = Buffer.allocUnsafe(c * hw);
    for (let p = 0; p < hw; p++) for (let ch = 0; ch < c; ch++) hwc[p * c + ch] = src[ch * hw + p];
    let res: Buffer;
    let sc = c;
    if (H === h && W === w) res = hwc;
    else {
      try {
        // sharp writes grey images as sRGB unless told otherwise; grey+alpha comes back as RGBA.
        let img = sharp(hwc, { raw: { width: w, height: h, channels: c as 1 | 2 | 3 | 4 } })
          .resize(W, H, { kernel, fit: 'fill', fastShrinkOnLoad: false });
        if (c === 1) img = img.toColourspace('b-w');
        const r = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
        res = r.data;
        sc = r.info.channels;
      } catch (err) {
        throw new HVAEError('ERR_HVAE_SHAPE', `resize of image ${i} from ${h}x${w} to ${H}x${W} failed: ${(err as Error).message}`, { cause: err });
      }
    }
    const map = c === 2 && sc === 4 ? [0, 3] : Array.from({ length: c }, (_, ch) => ch);
    const o = i * c * HW;
    for (let p = 0; p < HW; p++) for (let ch = 0; ch < c; ch++) out[o + ch * HW + p] = res[p * sc + map[ch]];
  }));
  return { data: out, shape: [n, c, H, W] };
}

/**
 * Checks that images (a batch, a dataset, or a `[c, h, w]` shape) have the `expected` `[c, h, w]`. Throws
 * `ERR_HVAE_SHAPE` saying what differs and which transform fixes it.
 */
export function checkImageShape(subject: ImageBatch | Dataset | readonly number[], expected: readonly [number, number, number] | readonly number[], what = 'images'): void {
  const got = Array.isArray(subject) ? subject as readonly number[] : 'read' in (subject as object) ? (subject as Dataset).shape : (subject as ImageBatch).shape.slice(1);
  if (got.length !== 3 || expected.length !== 3) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${what}: shapes must be [c, h, w], got ${JSON.stringify(got)} and expected ${JSON.stringify(expected)}`);
  }
  const problems: string[] = [];
  if (got[0] !== expected[0]) {
    problems.push(`${got[0]} channel${got[0] === 1 ? '' : 's'} instead of ${expected[0]} (${expected[0] === 1 ? 'convert with greyscale()' : expected[0] === 3 ? 'convert with toChannels(batch, 3)' : 'wrong data?'})`);
  }
  if (got[1] !== expected[1] || got[2] !== expected[2]) {
    problems.push(`size ${got[1]}x${got[2]} instead of ${expected[1]}x${expected[2]} (resize with resize(batch, [${expected[1]}, ${expected[2]}]))`);
  }
  if (problems.length) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${what} are ${got.join('x')} but ${expected.join('x')} (channels x height x width) is expected: ${problems.join('; ')}`);
  }
}

/** A dataset with every image inverted (255 − v), lazily. */
export function invertDataset(dataset: Dataset, name = `${dataset.name} (inverted)`): Dataset {
  return mapImages(dataset, (b) => invert(b), { name });
}

/** A dataset with every image resized with sharp, lazily on each read. */
export function resizeDataset(dataset: Dataset, size: [number, number], options: ResizeOptions & { name?: string } = {}): Dataset {
  const shape: ImageShape = [dataset.shape[0], size[0], size[1]];
  return mapImages(dataset, (b) => resize(b, size, options), { shape, name: options.name ?? dataset.name });
}

/** A dataset converted to 1 or 3 channels, lazily. */
export function channelsDataset(dataset: Dataset, channels: 1 | 3, name = dataset.name): Dataset {
  if (dataset.shape[0] === channels) return dataset;
  return mapImages(dataset, (b) => toChannels(b, channels), { shape: [channels, dataset.shape[1], dataset.shape[2]], name });
}
