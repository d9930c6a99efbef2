/**
 * The tensor bridge, TypeScript side: image batches cross into C++ as `{ data, shape }` and are validated here
 * (shape against length, element type, finite values) so that the addon only ever sees well-formed input.
 */
import { HVAEError } from './errors.js';

/** Element types accepted for image batches. */
export type ImageData = Uint8Array | Float32Array;

/**
 * A batch of images in NCHW layout.
 * - `Uint8Array`: raw 8-bit pixels 0..255; the model scales them to [0,1] (and binarizes or dequantizes if asked).
 * - `Float32Array`: values already in the model's input space ({0,1} or [0,1] for Bernoulli, [0,1) for DLM).
 */
export interface ImageBatch {
  /** Pixel values, length n*c*h*w, row-major NCHW. */
  data: ImageData;
  /** `[n, c, h, w]`. */
  shape: [number, number, number, number];
}

/** A float32 tensor returned by the addon. */
export interface FloatTensor {
  /** The values, row-major (C order). */
  data: Float32Array;
  /** The dimensions; their product is `data.length`. */
  shape: number[];
}

/**
 * Validates an image batch: a Uint8Array/Float32Array, a 4-D shape of positive integers whose product is the
 * length, float data finite and in [0, 1], and (when given) the expected `[c, h, w]`. Throws `ERR_HVAE_SHAPE`,
 * `ERR_HVAE_DTYPE`, `ERR_HVAE_NONFINITE` or `ERR_HVAE_RANGE`.
 */
export function validateImageBatch(batch: unknown, expected?: readonly number[], what = 'images'): ImageBatch {
  if (batch === null || typeof batch !== 'object') {
    throw new HVAEError('ERR_HVAE_DTYPE', `${what} must be an object { data, shape }, got ${batch === null ? 'null' : typeof batch}`);
  }
  const { data, shape } = batch as { data?: unknown; shape?: unknown };
  if (!(data instanceof Uint8Array) && !(data instanceof Float32Array)) {
    const got = data === undefined ? 'undefined' : (data as object)?.constructor?.name ?? typeof data;
    throw new HVAEError('ERR_HVAE_DTYPE', `${what}.data must be a Uint8Array (0..255) or a Float32Array, got ${got}`);
  }
  if (data instanceof Uint8Array && Buffer.isBuffer(data) === false && data.constructor !== Uint8Array) {
    throw new HVAEError('ERR_HVAE_DTYPE', `${what}.data must be a plain Uint8Array, got ${data.constructor.name}`);
  }
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((v) => Number.isInteger(v) && v > 0)) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${what}.shape must be [n, c, h, w] of positive integers, got ${JSON.stringify(shape)}`);
  }
  const n = shape[0] * shape[1] * shape[2] * shape[3];
  if (n !== data.length) {
    throw new HVAEError('ERR_HVAE_SHAPE',
      `${what}.shape ${JSON.stringify(shape)} needs ${n} values but ${what}.data has ${data.length}`);
  }
  if (expected && (shape[1] !== expected[0] || shape[2] !== expected[1] || shape[3] !== expected[2])) {
    throw new HVAEError('ERR_HVAE_SHAPE',
      `${what} are ${shape.slice(1).join('x')} but the model expects ${expected.join('x')} (channels x height x width)`);
  }
  if (data instanceof Float32Array) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (!(v >= 0 && v <= 1)) {
        const image = Math.floor(i / (n / shape[0]));
        if (!Number.isFinite(v)) {
          throw new HVAEError('ERR_HVAE_NONFINITE', `${what}.data[${i}] is ${v}; float input must be finite (image ${image})`);
        }
        throw new HVAEError('ERR_HVAE_RANGE',
          `${what}.data[${i}] is ${v} (image ${image}); float input must be in [0, 1] (pass 8-bit pixels as a Uint8Array, or divide by 255)`);
      }
    }
  }
  return { data, shape: shape as [number, number, number, number] };
}

/** Index of the first NaN or infinity in `data`, or -1 when every value is finite. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/** Number of images in a batch. */
export function batchSize(batch: ImageBatch): number {
  return batch.shape[0];
}

/** A view of images [start, end) of a batch (no copy). */
export function sliceBatch(batch: ImageBatch, start: number, end: number): ImageBatch {
  const per = batch.shape[1] * batch.shape[2] * batch.shape[3];
  const e = Math.min(end, batch.shape[0]);
  return {
    data: batch.data.subarray(start * per, e * per) as ImageData,
    shape: [e - start, batch.shape[1], batch.shape[2], batch.shape[3]],
  };
}
