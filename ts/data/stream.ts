/**
 * Datasets and streaming. A {@link Dataset} is a random-access collection of uint8 NCHW images (and optional
 * integer labels) that reads any set of indices on demand; {@link batches} walks it in (optionally shuffled)
 * batches with a bounded read-ahead, so that memory stays flat however many images are streamed.
 *
 * Backends: {@link ArrayDataset} (pixels in memory, e.g. a decompressed gzip file or decoded PNGs) and
 * {@link RecordFileDataset} (fixed-size records read with positional `fs` reads from an uncompressed file: IDX, NPY,
 * raw, CIFAR binary, NORB). {@link subset}, {@link concat}, {@link splitTrainValidation} and {@link mapImages} build
 * views on top of any dataset without copying pixels.
 */
import * as fs from 'node:fs';
import { HVAEError } from '../errors.js';
import type { ImageBatch } from '../tensor.js';
import { permutation } from './random.js';
import { formatError, ioError, mapLimit } from './util.js';

/** `[channels, height, width]` of every image of a dataset. */
export type ImageShape = [number, number, number];

/** An {@link ImageBatch} whose pixels are uint8 (what every reader produces; the model scales them itself). */
export interface U8ImageBatch extends ImageBatch {
  /** Pixels 0..255, NCHW, length n*c*h*w. */
  data: Uint8Array;
}

/** One batch read from a dataset. */
export interface DataBatch {
  /** The images, uint8 NCHW. */
  images: U8ImageBatch;
  /** Integer class labels (one per image), when the dataset has labels. */
  labels?: Int32Array;
  /** The dataset indices of the images, in batch order. */
  indices: Int32Array;
  /** File names of the images (image folders and archives only), in batch order. */
  names?: string[];
}

/**
 * A random-access image dataset. Implementations read only what `read` asks for (or hold the pixels in memory when
 * the source is compressed), so a dataset larger than memory can be streamed with {@link batches}.
 */
export interface Dataset {
  /** A human-readable name used in messages, e.g. `'FashionMNIST train'` or a file path. */
  readonly name: string;
  /** Number of images. */
  readonly length: number;
  /** `[c, h, w]` of every image. */
  readonly shape: ImageShape;
  /** Whether `read` returns labels. */
  readonly hasLabels: boolean;
  /** Class names indexed by label, when known. */
  readonly classNames?: readonly string[];
  /**
   * Reads the images (and labels) at `indices`, in that order. Indices must be integers in `[0, length)` and may
   * repeat. Rejects with `ERR_HVAE_OPTION` for a bad index and `ERR_HVAE_FORMAT`/`ERR_HVAE_IO` for unreadable data.
   */
  read(indices: ArrayLike<number>): Promise<DataBatch>;
}

/** Bytes of one image of `shape`. */
export function imageBytes(shape: ImageShape): number {
  return shape[0] * shape[1] * shape[2];
}

/** Copies and validates indices against a dataset length. Throws `ERR_HVAE_OPTION`. */
export function toIndexArray(indices: ArrayLike<number>, length: number, what: string): Int32Array {
  if (indices === null || typeof indices !== 'object' || typeof (indices as { length?: unknown }).length !== 'number') {
    throw new HVAEError('ERR_HVAE_OPTION', `${what}: indices must be an array of integers`);
  }
  const out = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i];
    if (!Number.isInteger(v) || v < 0 || v >= length) {
      throw new HVAEError('ERR_HVAE_OPTION', `${what}: index ${v} (at position ${i}) is out of range; the dataset has ${length} images (valid indices 0..${length - 1})`);
    }
    out[i] = v;
  }
  return out;
}

function checkShape(shape: unknown, what: string): ImageShape {
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((v) => Number.isInteger(v) && v > 0)) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${what}: image shape must be [c, h, w] of positive integers, got ${JSON.stringify(shape)}`);
  }
  return [shape[0], shape[1], shape[2]];
}

/** Options of {@link ArrayDataset}. */
export interface ArrayDatasetOptions {
  /** Name used in messages. */
  name: string;
  /** All pixels, uint8 NCHW, length `n * c * h * w`. Not copied. */
  images: Uint8Array;
  /** `[c, h, w]`. */
  shape: ImageShape;
  /** One label per image. */
  labels?: Int32Array;
  /** One name (e.g. file path) per image. */
  names?: readonly string[];
  /** Class names indexed by label. */
  classNames?: readonly string[];
}

/** A dataset whose pixels are in memory (a decompressed file, decoded images, or generated data). */
export class ArrayDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly shape: ImageShape;
  readonly hasLabels: boolean;
  readonly classNames?: readonly string[];
  /** All pixels, uint8 NCHW. */
  readonly images: Uint8Array;
  /** All labels, if any. */
  readonly labels?: Int32Array;
  /** Per-image names, if any. */
  readonly names?: readonly string[];

  /** Throws `ERR_HVAE_SHAPE` when the arrays do not agree with `shape`. */
  constructor(options: ArrayDatasetOptions) {
    this.name = options.name;
    this.shape = checkShape(options.shape, options.name);
    const per = imageBytes(this.shape);
    if (!(options.images instanceof Uint8Array) || options.images.length % per !== 0) {
      throw new HVAEError('ERR_HVAE_SHAPE', `${options.name}: ${options.images?.length} pixel bytes is not a whole number of ${this.shape.join('x')} images`);
    }
    this.length = options.images.length / per;
    if (options.labels && options.labels.length !== this.length) {
      throw new HVAEError('ERR_HVAE_SHAPE', `${options.name}: ${options.labels.length} labels for ${this.length} images`);
    }
    if (options.names && options.names.length !== this.length) {
      throw new HVAEError('ERR_HVAE_SHAPE', `${options.name}: ${options.names.length} names for ${this.length} images`);
    }
    this.images = options.images;
    this.labels = options.labels;
    this.names = options.names;
    this.hasLabels = options.labels !== undefined;
    this.classNames = options.classNames;
  }

  /** See {@link Dataset.read}. */
  async read(indices: ArrayLike<number>): Promise<DataBatch> {
    const idx = toIndexArray(indices, this.length, this.name);
    const per = imageBytes(this.shape);
    const out = new Uint8Array(idx.length * per);
    const labels = this.labels ? new Int32Array(idx.length) : undefined;
    let contiguous = true;
    for (let k = 1; k < idx.length; k++) if (idx[k] !== idx[k - 1] + 1) { contiguous = false; break; }
    if (contiguous && idx.length) {
      out.set(this.images.subarray(idx[0] * per, (idx[0] + idx.length) * per));
    } else {
      for (let k = 0; k < idx.length; k++) out.set(this.images.subarray(idx[k] * per, (idx[k] + 1) * per), k * per);
    }
    if (labels) for (let k = 0; k < idx.length; k++) labels[k] = this.labels![idx[k]];
    const batch: DataBatch = { images: { data: out, shape: [idx.length, ...this.shape] }, indices: idx };
    if (labels) batch.labels = labels;
    if (this.names) batch.names = Array.from(idx, (i) => this.names![i]);
    return batch;
  }
}

/** Options of {@link RecordFileDataset}. */
export interface RecordFileDatasetOptions {
  /** Name used in messages. */
  name: string;
  /** The uncompressed file holding fixed-size records. */
  file: string;
  /** Number of records (images). */
  length: number;
  /** `[c, h, w]` of each image. */
  shape: ImageShape;
  /** Byte offset of record 0 in the file. */
  dataOffset: number;
  /** Bytes per record (default: the image size). */
  recordSize?: number;
  /** Byte offset of the image within a record (default 0). */
  imageOffset?: number;
  /** Pixel order of the stored image: `'CHW'` (default) or `'HWC'` (interleaved; transposed on read). */
  layout?: 'CHW' | 'HWC';
  /** Labels held in memory (one per record). */
  labels?: Int32Array;
  /** Or: byte offset of a one-byte label within each record (CIFAR binary format). */
  labelOffset?: number;
  /** Largest valid label when `labelOffset` is used; larger values are an `ERR_HVAE_FORMAT` error. */
  maxLabel?: number;
  /** Class names indexed by label. */
  classNames?: readonly string[];
  /** Maximum concurrent positional reads per `read` call (default 32). */
  concurrency?: number;
}

/**
 * A dataset of fixed-size records in an uncompressed file, read with positional `fs` reads: only the requested
 * records are read, contiguous runs of indices in one call each. The file is opened per `read` call, so the dataset
 * holds no file descriptor between reads and needs no closing.
 */
export class RecordFileDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly shape: ImageShape;
  readonly hasLabels: boolean;
  readonly classNames?: readonly string[];
  /** The file read from. */
  readonly file: string;
  private readonly o: Required<Omit<RecordFileDatasetOptions, 'labels' | 'labelOffset' | 'classNames' | 'maxLabel'>> & Pick<RecordFileDatasetOptions, 'labels' | 'labelOffset' | 'maxLabel'>;

  constructor(options: RecordFileDatasetOptions) {
    const shape = checkShape(options.shape, options.name);
    const count = (key: 'length' | 'concurrency' | 'dataOffset' | 'recordSize' | 'imageOffset', min: number): void => {
      const v = options[key];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) {
        throw new HVAEError('ERR_HVAE_OPTION', `${options.name}: ${key} must be an integer >= ${min}, got ${String(v)}`);
      }
    };
    if (options.length === undefined) throw new HVAEError('ERR_HVAE_OPTION', `${options.name}: length is required`);
    count('length', 0);
    count('dataOffset', 0);
    count('imageOffset', 0);
    count('recordSize', 1);
    count('concurrency', 1);
    const per = imageBytes(shape);
    this.o = {
      recordSize: per,
      imageOffset: 0,
      layout: 'CHW',
      concurrency: 32,
      ...options,
      shape,
    };
    if (this.o.imageOffset + per > this.o.recordSize) {
      throw new HVAEError('ERR_HVAE_SHAPE', `${options.name}: a ${shape.join('x')} image does not fit a ${this.o.recordSize}-byte record at offset ${this.o.imageOffset}`);
    }
    if (options.labels && options.labels.length !== options.length) {
      throw new HVAEError('ERR_HVAE_SHAPE', `${options.name}: ${options.labels.length} labels for ${options.length} images`);
    }
    this.name = options.name;
    this.file = options.file;
    this.length = options.length;
    this.shape = shape;
    this.hasLabels = options.labels !== undefined || options.labelOffset !== undefined;
    this.classNames = options.classNames;
  }

  /** See {@link Dataset.read}. */
  async read(indices: ArrayLike<number>): Promise<DataBatch> {
    const idx = toIndexArray(indices, this.length, this.name);
    const n = idx.length;
    const { recordSize, imageOffset, dataOffset, layout, labelOffset, maxLabel } = this.o;
    const shape = this.shape;
    const per = imageBytes(shape);
    const out = new Uint8Array(n * per);
    const labels = this.hasLabels ? new Int32Array(n) : undefined;
    // Sort positions by index, then cut into runs of consecutive indices.
    const order = new Int32Array(n);
    for (let k = 0; k < n; k++) order[k] = k;
    let sorted = true;
    for (let k = 1; k < n; k++) if (idx[k] < idx[k - 1]) { sorted = false; break; }
    if (!sorted) order.sort((a, b) => idx[a] - idx[b] || a - b);
    const runs: { start: number; count: number; o: number }[] = [];
    for (let k = 0; k < n;) {
      let j = k + 1;
      while (j < n && idx[order[j]] === idx[order[j - 1]] + 1) j++;
      runs.push({ start: idx[order[k]], count: j - k, o: k });
      k = j;
    }
    const direct = layout === 'CHW' && recordSize === per && imageOffset === 0 && labelOffset === undefined;
    // Plain fds with callback reads: noticeably less overhead per read than FileHandle (matters for shuffled access).
    let fd: number;
    try {
      fd = await new Promise<number>((resolve, reject) => fs.open(this.file, 'r', (err, d) => (err ? reject(err) : resolve(d))));
    } catch (err) {
      throw ioError(this.file, err);
    }
    const readAt = (buf: Uint8Array, off: number, len: number, pos: number): Promise<number> =>
      new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
    try {
      await mapLimit(runs, this.o.concurrency, async (run) => {
        const len = run.count * recordSize;
        const pos = dataOffset + run.start * recordSize;
        // Whole run lands contiguously in `out`: read straight into it.
        const inPlace = direct && order[run.o + run.count - 1] - order[run.o] === run.count - 1 && isIncreasingRun(order, run.o, run.count);
        const buf = inPlace ? out.subarray(order[run.o] * per, order[run.o] * per + len) : Buffer.allocUnsafe(len);
        let got = 0;
        while (got < len) {
          let r: number;
          try {
            r = await readAt(buf, got, len - got, pos + got);
          } catch (err) {
            throw ioError(this.file, err);
          }
          if (r === 0) break;
          got += r;
        }
        if (got < len) {
          throw formatError(this.file, `truncated: record ${run.start + Math.floor(got / recordSize)} (byte ${pos + got}) lies beyond the end of the file; the file is shorter than its header says`);
        }
        if (inPlace) return;
        for (let k = 0; k < run.count; k++) {
          const dst = order[run.o + k];
          const rec = buf.subarray(k * recordSize, (k + 1) * recordSize);
          if (layout === 'CHW') out.set(rec.subarray(imageOffset, imageOffset + per), dst * per);
          else hwcToChw(rec.subarray(imageOffset, imageOffset + per), out, dst * per, shape);
          if (labelOffset !== undefined) {
            const v = rec[labelOffset];
            if (maxLabel !== undefined && v > maxLabel) {
              throw formatError(this.file, `record ${run.start + k} has label ${v}, but labels must be 0..${maxLabel}`);
            }
            labels![dst] = v;
          }
        }
      });
    } finally {
      await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
    }
    if (this.o.labels) for (let k = 0; k < n; k++) labels![k] = this.o.labels[idx[k]];
    const batch: DataBatch = { images: { data: out, shape: [n, ...shape] }, indices: idx };
    if (labels) batch.labels = labels;
    return batch;
  }
}

function isIncreasingRun(order: Int32Array, o: number, count: number): boolean {
  for (let k = 1; k < count; k++) if (order[o + k] !== order[o] + k) return false;
  return true;
}

/** Transposes one interleaved HWC image into CHW at `out[offset]`. */
export function hwcToChw(src: Uint8Array, out: Uint8Array, offset: number, shape: ImageShape): void {
  const [c, h, w] = shape;
  if (c === 1) { out.set(src.subarray(0, h * w), offset); return; }
  const hw = h * w;
  for (let p = 0; p < hw; p++) {
    const s = p * c;
    for (let ch = 0; ch < c; ch++) out[offset + ch * hw + p] = src[s + ch];
  }
}

/** Options of {@link batches}. */
export interface BatchOptions {
  /** Images per batch (default 128, the reference's training batch). */
  batchSize?: number;
  /** Visit the images in a seeded random order (default false: index order). */
  shuffle?: boolean;
  /** Seed of the shuffle (default 0). The same seed gives the same order on every platform. */
  seed?: number | string;
  /** Batches read ahead while the consumer works on the current one (default 2; 0 disables read-ahead). */
  readAhead?: number;
  /** Drop the last incomplete batch (default false, as the reference's loaders). */
  dropLast?: boolean;
  /** Stops the iteration with `ERR_HVAE_ABORTED` when aborted. */
  signal?: AbortSignal;
}

/**
 * Iterates a dataset in batches. At most `readAhead` batches are being read while the consumer holds one, so memory
 * is bounded by `(readAhead + 1) * batchSize` images however long the dataset is. Breaking out of the loop stops
 * reading. Each yielded batch is a fresh copy the consumer may keep.
 *
 * @example
 * for await (const { images, labels } of batches(ds, { batchSize: 128, shuffle: true, seed: 1 })) model.trainStep(images);
 */
export async function* batches(dataset: Dataset, options: BatchOptions = {}): AsyncGenerator<DataBatch, void, undefined> {
  if (dataset === null || typeof dataset !== 'object' || typeof dataset.read !== 'function' || !Number.isSafeInteger(dataset.length) || dataset.length < 0) {
    throw new HVAEError('ERR_HVAE_OPTION', `batches needs a Dataset (an object with length and read(indices)), got ${dataset === null ? 'null' : typeof dataset}`);
  }
  if (options === null || typeof options !== 'object') throw new HVAEError('ERR_HVAE_OPTION', 'batches: options must be an object');
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new HVAEError('ERR_HVAE_OPTION', 'batches: signal must be an AbortSignal');
  const batchSize = options.batchSize ?? 128;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new HVAEError('ERR_HVAE_OPTION', `batchSize must be a positive integer, got ${JSON.stringify(options.batchSize)}`);
  }
  const readAhead = options.readAhead ?? 2;
  if (!Number.isInteger(readAhead) || readAhead < 0 || readAhead > 64) {
    throw new HVAEError('ERR_HVAE_OPTION', `readAhead must be an integer in 0..64, got ${JSON.stringify(options.readAhead)}`);
  }
  const n = dataset.length;
  const order = options.shuffle ? permutation(n, options.seed ?? 0) : undefined;
  const count = options.dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
  const indicesOf = (b: number): Int32Array => {
    const start = b * batchSize;
    const end = Math.min(n, start + batchSize);
    if (order) return order.subarray(start, end);
    const r = new Int32Array(end - start);
    for (let k = 0; k < r.length; k++) r[k] = start + k;
    return r;
  };
  const pending: Promise<DataBatch>[] = [];
  const start = (b: number): Promise<DataBatch> => {
    const want = indicesOf(b);
    const p = Promise.resolve(dataset.read(want)).then((got) => {
      // A dataset whose read() returns fewer or more images than asked would shift every later row.
      const n = got?.images?.shape?.[0];
      if (n !== want.length) throw new HVAEError('ERR_HVAE_DATA', `${dataset.name}: read() returned ${String(n)} images for ${want.length} indices`);
      return got;
    });
    p.catch(() => { /* observed when awaited; avoids unhandled rejections for abandoned read-ahead */ });
    return p;
  };
  let next = 0;
  let delivered = 0;
  const abortError = (): HVAEError => new HVAEError('ERR_HVAE_ABORTED', `reading ${dataset.name} was aborted after ${delivered} of ${count} batches`, { cause: options.signal?.reason });
  // The next batch, or ERR_HVAE_ABORTED as soon as the signal fires: a slow read is not waited for.
  const untilAborted = (p: Promise<DataBatch>): Promise<DataBatch> => {
    const signal = options.signal;
    if (!signal) return p;
    if (signal.aborted) return Promise.reject(abortError());
    return new Promise<DataBatch>((resolve, reject) => {
      const onAbort = (): void => reject(abortError());
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  };
  while (true) {
    if (next >= count && pending.length === 0) return; // everything was delivered: a later abort changes nothing
    if (options.signal?.aborted) throw abortError();
    while (next < count && pending.length < Math.max(1, readAhead)) pending.push(start(next++));
    const batch = await untilAborted(pending.shift()!);
    while (next < count && pending.length < readAhead) pending.push(start(next++));
    delivered++;
    yield batch;
  }
}

/** A view of `dataset` restricted to `indices` (in that order). No pixels are copied. */
export function subset(dataset: Dataset, indices: ArrayLike<number>, name?: string): Dataset {
  const map = toIndexArray(indices, dataset.length, dataset.name);
  return new SubsetDataset(dataset, map, name ?? `${dataset.name} [subset of ${map.length}]`);
}

class SubsetDataset implements Dataset {
  readonly length: number;
  readonly shape: ImageShape;
  readonly hasLabels: boolean;
  readonly classNames?: readonly string[];
  constructor(readonly parent: Dataset, readonly map: Int32Array, readonly name: string) {
    this.length = map.length;
    this.shape = parent.shape;
    this.hasLabels = parent.hasLabels;
    this.classNames = parent.classNames;
  }
  async read(indices: ArrayLike<number>): Promise<DataBatch> {
    const idx = toIndexArray(indices, this.length, this.name);
    const parentIdx = new Int32Array(idx.length);
    for (let k = 0; k < idx.length; k++) parentIdx[k] = this.map[idx[k]];
    const b = await this.parent.read(parentIdx);
    return { ...b, indices: idx };
  }
}

/**
 * The datasets one after another (like PyTorch's `ConcatDataset`). All must have the same image shape
 * (`ERR_HVAE_SHAPE` otherwise). Labels are returned only when every part has labels; class names are kept when all
 * parts agree on them.
 */
export function concat(datasets: readonly Dataset[], name?: string): Dataset {
  if (!Array.isArray(datasets) || datasets.length === 0) {
    throw new HVAEError('ERR_HVAE_OPTION', 'concat needs at least one dataset');
  }
  const shape = datasets[0].shape;
  for (const d of datasets) {
    if (d.shape[0] !== shape[0] || d.shape[1] !== shape[1] || d.shape[2] !== shape[2]) {
      throw new HVAEError('ERR_HVAE_SHAPE', `concat: ${d.name} has ${d.shape.join('x')} images but ${datasets[0].name} has ${shape.join('x')}`);
    }
  }
  return new ConcatDataset([...datasets], name ?? datasets.map((d) => d.name).join(' + '));
}

class ConcatDataset implements Dataset {
  readonly length: number;
  readonly shape: ImageShape;
  readonly hasLabels: boolean;
  readonly classNames?: readonly string[];
  private readonly offsets: number[];
  constructor(readonly parts: Dataset[], readonly name: string) {
    this.shape = parts[0].shape;
    this.offsets = [0];
    for (const p of parts) this.offsets.push(this.offsets[this.offsets.length - 1] + p.length);
    this.length = this.offsets[this.offsets.length - 1];
    this.hasLabels = parts.every((p) => p.hasLabels);
    const cn = parts[0].classNames;
    this.classNames = cn && parts.every((p) => p.classNames && p.classNames.length === cn.length && p.classNames.every((v, i) => v === cn[i])) ? cn : undefined;
  }
  async read(indices: ArrayLike<number>): Promise<DataBatch> {
    const idx = toIndexArray(indices, this.length, this.name);
    const per = imageBytes(this.shape);
    const groups = this.parts.map(() => ({ local: [] as number[], pos: [] as number[] }));
    for (let k = 0; k < idx.length; k++) {
      let lo = 0;
      let hi = this.parts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (this.offsets[mid] <= idx[k]) lo = mid; else hi = mid - 1;
      }
      groups[lo].local.push(idx[k] - this.offsets[lo]);
      groups[lo].pos.push(k);
    }
    const out = new Uint8Array(idx.length * per);
    const labels = this.hasLabels ? new Int32Array(idx.length) : undefined;
    let names: string[] | undefined;
    const results = await Promise.all(groups.map((g, p) => (g.local.length ? this.parts[p].read(g.local) : undefined)));
    results.forEach((r, p) => {
      if (!r) return;
      const g = groups[p];
      for (let k = 0; k < g.pos.length; k++) {
        out.set(r.images.data.subarray(k * per, (k + 1) * per), g.pos[k] * per);
        if (labels) labels[g.pos[k]] = r.labels![k];
        if (r.names) { names ??= new Array(idx.length).fill(''); names[g.pos[k]] = r.names[k]; }
      }
    });
    const batch: DataBatch = { images: { data: out, shape: [idx.length, ...this.shape] }, indices: idx };
    if (labels) batch.labels = labels;
    if (names) batch.names = names;
    return batch;
  }
}

/** Options of {@link splitTrainValidation}. */
export interface SplitOptions {
  /**
   * Size of the held-out validation set: a count (default 5000), or a fraction in (0, 1) of the dataset.
   */
  validation?: number;
  /** Seed of the random assignment (default 0). */
  seed?: number | string;
}

/**
 * Carves a held-out validation set out of a (training) dataset, as the project does for checkpoint selection instead
 * of the reference's use of the test split (ALGORITHM.md §1.1). The assignment is a seeded random permutation; both
 * parts keep their images in ascending index order (good locality for file-backed datasets). Throws
 * `ERR_HVAE_OPTION` when the validation size is not in 1..length-1.
 */
export function splitTrainValidation(dataset: Dataset, options: SplitOptions = {}): { train: Dataset; validation: Dataset } {
  const n = dataset.length;
  let v = options.validation ?? 5000;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new HVAEError('ERR_HVAE_OPTION', `validation must be a positive count or a fraction in (0, 1), got ${JSON.stringify(options.validation)}`);
  }
  if (v < 1) v = Math.round(n * v);
  if (!Number.isInteger(v) || v < 1 || v >= n) {
    throw new HVAEError('ERR_HVAE_OPTION', `validation size ${options.validation} is not possible for ${dataset.name} with ${n} images (need 1..${n - 1} images)`);
  }
  const perm = permutation(n, options.seed ?? 0);
  const val = perm.slice(0, v).sort();
  const train = perm.slice(v).sort();
  return {
    train: subset(dataset, train, `${dataset.name} [train part, ${n - v}]`),
    validation: subset(dataset, val, `${dataset.name} [validation part, ${v}]`),
  };
}

/** Options of {@link mapImages}. */
export interface MapImagesOptions {
  /** Image shape after the mapping (default: unchanged). */
  shape?: ImageShape;
  /** Name of the mapped dataset (default: the parent's). */
  name?: string;
}

/**
 * A dataset whose images are `fn(images)` of the parent's, applied lazily on every read (e.g. inversion or a resize,
 * see transforms.ts). `fn` must return uint8 NCHW images of the declared shape (`ERR_HVAE_SHAPE` otherwise).
 */
export function mapImages(dataset: Dataset, fn: (images: U8ImageBatch) => U8ImageBatch | Promise<U8ImageBatch>, options: MapImagesOptions = {}): Dataset {
  const shape = options.shape ? checkShape(options.shape, options.name ?? dataset.name) : dataset.shape;
  const name = options.name ?? dataset.name;
  return {
    name,
    length: dataset.length,
    shape,
    hasLabels: dataset.hasLabels,
    classNames: dataset.classNames,
    async read(indices: ArrayLike<number>): Promise<DataBatch> {
      const b = await dataset.read(indices);
      const images = await fn(b.images);
      const [n, c, h, w] = images.shape;
      if (!(images.data instanceof Uint8Array) || n !== b.indices.length || c !== shape[0] || h !== shape[1] || w !== shape[2] || images.data.length !== n * c * h * w) {
        throw new HVAEError('ERR_HVAE_SHAPE', `${name}: the image mapping returned ${images.shape.join('x')} uint8=${images.data instanceof Uint8Array}, expected ${b.indices.length}x${shape.join('x')} uint8`);
      }
      return { ...b, images };
    },
  };
}

/** Options of {@link proceduralDataset}. */
export interface ProceduralDatasetOptions {
  /** Name used in messages. */
  name: string;
  /** Number of images. */
  length: number;
  /** `[c, h, w]`. */
  shape: ImageShape;
  /** Writes image `index` into `out` (length c*h*w, zero-filled). Must be deterministic for reproducible runs. */
  generate: (index: number, out: Uint8Array) => void;
  /** Label of image `index`, if the dataset has labels. */
  label?: (index: number) => number;
}

/** A dataset whose images are computed on demand (synthetic data for tests and benchmarks; nothing is stored). */
export function proceduralDataset(options: ProceduralDatasetOptions): Dataset {
  const shape = checkShape(options.shape, options.name);
  if (!Number.isInteger(options.length) || options.length < 0) {
    throw new HVAEError('ERR_HVAE_OPTION', `${options.name}: length must be a non-negative integer, got ${options.length}`);
  }
  const per = imageBytes(shape);
  return {
    name: options.name,
    length: options.length,
    shape,
    hasLabels: options.label !== undefined,
    async read(indices: ArrayLike<number>): Promise<DataBatch> {
      const idx = toIndexArray(indices, options.length, options.name);
      const out = new Uint8Array(idx.length * per);
      for (let k = 0; k < idx.length; k++) options.generate(idx[k], out.subarray(k * per, (k + 1) * per));
      const batch: DataBatch = { images: { data: out, shape: [idx.length, ...shape] }, indices: idx };
      if (options.label) batch.labels = Int32Array.from(idx, options.label);
      return batch;
    },
  };
}

/** Options of {@link readAll}. */
export interface ReadAllOptions {
  /** Images per underlying read (default 4096). */
  batchSize?: number;
}

/** Reads a whole dataset into one batch (for small datasets and evaluation sets). */
export async function readAll(dataset: Dataset, options: ReadAllOptions = {}): Promise<DataBatch> {
  const per = imageBytes(dataset.shape);
  const n = dataset.length;
  const out = new Uint8Array(n * per);
  const labels = dataset.hasLabels ? new Int32Array(n) : undefined;
  let names: string[] | undefined;
  let o = 0;
  for await (const b of batches(dataset, { batchSize: options.batchSize ?? 4096, readAhead: 1 })) {
    out.set(b.images.data, o * per);
    if (labels && b.labels) labels.set(b.labels, o);
    if (b.names) { names ??= []; names.push(...b.names); }
    o += b.indices.length;
  }
  const indices = new Int32Array(n);
  for (let i = 0; i < n; i++) indices[i] = i;
  const batch: DataBatch = { images: { data: out, shape: [n, ...dataset.shape] }, indices };
  if (labels) batch.labels = labels;
  if (names) batch.names = names;
  return batch;
}

/** Reads a whole dataset into an {@link ArrayDataset} (e.g. to cache a lazily transformed set in memory). */
export async function materialize(dataset: Dataset, name = dataset.name): Promise<ArrayDataset> {
  const all = await readAll(dataset);
  return new ArrayDataset({ name, images: all.images.data, shape: dataset.shape, labels: all.labels, names: all.names, classNames: dataset.classNames });
}
