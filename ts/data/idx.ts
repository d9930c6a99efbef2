/**
 * IDX files (the MNIST family's format; raw or gzip): `00 00 TT ND` magic (TT = element type, ND = number of
 * dimensions), ND big-endian uint32 dimensions, then the elements in big-endian row-major order.
 *
 * Images are 3-D `[n, h, w]` uint8 (one channel) or 4-D `[n, c, h, w]` uint8; labels are 1-D `[n]` of any integer
 * type. A gzip file is decompressed into memory (47 MB for FashionMNIST train); an uncompressed file is read with
 * positional reads, so arbitrarily large IDX files stream in bounded memory.
 */
import * as fs from 'node:fs';
import { HVAEError } from '../errors.js';
import { ArrayDataset, Dataset, ImageShape, RecordFileDataset } from './stream.js';
import { fileIsGzip, formatError, gunzipChecked, gunzipSyncChecked, ioError, isGzip, product, readFileChecked, readHead, statChecked } from './util.js';

/** Element types of the IDX format. */
export type IdxDType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

const TYPE_CODES: Record<number, { dtype: IdxDType; size: number }> = {
  0x08: { dtype: 'uint8', size: 1 },
  0x09: { dtype: 'int8', size: 1 },
  0x0b: { dtype: 'int16', size: 2 },
  0x0c: { dtype: 'int32', size: 4 },
  0x0d: { dtype: 'float32', size: 4 },
  0x0e: { dtype: 'float64', size: 8 },
};

/** The header of an IDX file. */
export interface IdxHeader {
  /** Element type. */
  dtype: IdxDType;
  /** Dimensions, outermost first. */
  dims: number[];
  /** Byte offset of the first element (4 + 4 * dims.length). */
  dataOffset: number;
  /** Bytes per element. */
  elementSize: number;
}

/** A parsed IDX array. Multi-byte elements are converted to native typed arrays. */
export interface IdxArray extends IdxHeader {
  /** The elements, row-major. */
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

/**
 * Parses an IDX header from the first bytes of an (uncompressed) IDX file. Throws `ERR_HVAE_FORMAT` naming `file`
 * for a wrong magic number, an unknown type or a truncated header.
 */
export function parseIdxHeader(buf: Uint8Array, file = '<buffer>'): IdxHeader {
  if (buf.length < 4) throw formatError(file, `not an IDX file: ${buf.length} bytes is shorter than the 4-byte magic number`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    const hex = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw formatError(file, `not an IDX file: wrong magic number ${hex} (IDX files start with 00 00, then the type byte and the number of dimensions)`);
  }
  const t = TYPE_CODES[buf[2]];
  if (!t) throw formatError(file, `not an IDX file: unknown element type 0x${buf[2].toString(16).padStart(2, '0')} in the magic number (known: 08 uint8, 09 int8, 0b int16, 0c int32, 0d float32, 0e float64)`);
  const nd = buf[3];
  if (nd === 0) throw formatError(file, 'IDX magic number declares 0 dimensions');
  const dataOffset = 4 + 4 * nd;
  if (buf.length < dataOffset) throw formatError(file, `truncated IDX header: ${nd} dimensions need ${dataOffset} header bytes, the file has ${buf.length}`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(dv.getUint32(4 + 4 * i, false));
  return { dtype: t.dtype, dims, dataOffset, elementSize: t.size };
}

/**
 * Parses a complete IDX file held in memory (gzip-compressed or not). Checks the magic number, the element type and
 * that the payload length matches the dimensions exactly. Throws only `ERR_HVAE_FORMAT` errors.
 */
export function parseIdx(buf: Uint8Array, file = '<buffer>'): IdxArray {
  if (isGzip(buf)) buf = gunzipSyncChecked(buf, file);
  const h = parseIdxHeader(buf, file);
  const count = product(h.dims);
  const need = h.dataOffset + count * h.elementSize;
  if (!Number.isFinite(need) || buf.length < need) {
    throw formatError(file, `truncated IDX file: dimensions ${h.dims.join('x')} of ${h.dtype} need ${need} bytes, the file has ${buf.length}`);
  }
  if (buf.length > need) {
    throw formatError(file, `IDX file has ${buf.length - need} unexpected bytes after the ${h.dims.join('x')} ${h.dtype} data (wrong dimensions in the header?)`);
  }
  return { ...h, data: decodeElements(buf.subarray(h.dataOffset, need), h.dtype, count) };
}

function decodeElements(bytes: Uint8Array, dtype: IdxDType, count: number): IdxArray['data'] {
  switch (dtype) {
    case 'uint8': return bytes;
    case 'int8': return new Int8Array(bytes.buffer, bytes.byteOffset, count);
    default: {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (dtype === 'int16') { const a = new Int16Array(count); for (let i = 0; i < count; i++) a[i] = dv.getInt16(2 * i, false); return a; }
      if (dtype === 'int32') { const a = new Int32Array(count); for (let i = 0; i < count; i++) a[i] = dv.getInt32(4 * i, false); return a; }
      if (dtype === 'float32') { const a = new Float32Array(count); for (let i = 0; i < count; i++) a[i] = dv.getFloat32(4 * i, false); return a; }
      const a = new Float64Array(count); for (let i = 0; i < count; i++) a[i] = dv.getFloat64(8 * i, false); return a;
    }
  }
}

/** Reads and parses a whole IDX file (raw or gzip). Rejects with `ERR_HVAE_FORMAT`, `ERR_HVAE_DATA` (missing) or `ERR_HVAE_IO`. */
export async function readIdx(file: string): Promise<IdxArray> {
  const raw = await readFileChecked(file);
  return parseIdx(isGzip(raw) ? await gunzipChecked(raw, file) : raw, file);
}

/** Reads just the header of an uncompressed IDX file (or the whole file when it is gzip-compressed). */
export async function readIdxHeader(file: string): Promise<IdxHeader & { compressed: boolean }> {
  if (await fileIsGzip(file)) {
    const a = await readIdx(file);
    return { dtype: a.dtype, dims: a.dims, dataOffset: a.dataOffset, elementSize: a.elementSize, compressed: true };
  }
  const head = await readHead(file, 4 + 4 * 255);
  return { ...parseIdxHeader(head, file), compressed: false };
}

/** Labels of an IDX label file as Int32Array. Throws `ERR_HVAE_FORMAT` unless the file is a 1-D integer array. */
export async function readIdxLabels(file: string): Promise<Int32Array> {
  const a = await readIdx(file);
  return idxLabels(a, file);
}

function idxLabels(a: IdxArray, file: string): Int32Array {
  if (a.dims.length !== 1) {
    throw formatError(file, `expected a 1-D IDX label file, got ${a.dims.length} dimensions (${a.dims.join('x')}); is this an image file?`);
  }
  if (a.dtype === 'float32' || a.dtype === 'float64') throw formatError(file, `IDX labels must be integers, got ${a.dtype}`);
  return a.data instanceof Int32Array ? a.data : Int32Array.from(a.data as ArrayLike<number>);
}

function imageShapeOf(dims: number[], file: string): ImageShape {
  if (dims.length === 3) return [1, dims[1], dims[2]];
  if (dims.length === 4) return [dims[1], dims[2], dims[3]];
  throw formatError(file, `expected an IDX image file with 3 ([n, h, w]) or 4 ([n, c, h, w]) dimensions, got ${dims.length} (${dims.join('x')}); is this a label file?`);
}

/** Options of {@link openIdx}. */
export interface OpenIdxOptions {
  /** The matching IDX label file (raw or gzip). Its count must equal the image count (`ERR_HVAE_FORMAT` otherwise). */
  labels?: string;
  /** Dataset name used in messages (default: the image file path). */
  name?: string;
  /** Class names indexed by label. */
  classNames?: readonly string[];
}

/**
 * Opens an IDX image file (and optional label file) as a {@link Dataset}. Gzip files are decompressed once into
 * memory; uncompressed files are read lazily with positional reads (after checking that the file size matches the
 * header). Rejects with `ERR_HVAE_FORMAT` (an empty file, bad magic, wrong type, truncated, counts disagree),
 * `ERR_HVAE_DATA` (a missing file, or a header of zero images), `ERR_HVAE_SHAPE` (zero height or width) or
 * `ERR_HVAE_IO`.
 */
export async function openIdx(imagesFile: string, options: OpenIdxOptions = {}): Promise<Dataset> {
  const name = options.name ?? imagesFile;
  const labels = options.labels ? await readIdxLabels(options.labels) : undefined;
  let dataset: Dataset;
  let count: number;
  if (await fileIsGzip(imagesFile)) {
    const a = await readIdx(imagesFile);
    if (a.dtype !== 'uint8') throw formatError(imagesFile, `IDX images must be uint8 (type 0x08), got ${a.dtype}`);
    const shape = imageShapeOf(a.dims, imagesFile);
    count = a.dims[0];
    checkCounts(count, labels, imagesFile, options.labels);
    dataset = new ArrayDataset({ name, images: a.data as Uint8Array, shape, labels, classNames: options.classNames });
  } else {
    const h = await readIdxHeader(imagesFile);
    if (h.dtype !== 'uint8') throw formatError(imagesFile, `IDX images must be uint8 (type 0x08), got ${h.dtype}`);
    const shape = imageShapeOf(h.dims, imagesFile);
    count = h.dims[0];
    const st = await statChecked(imagesFile);
    const need = h.dataOffset + product(h.dims);
    if (st.size < need) throw formatError(imagesFile, `truncated IDX file: dimensions ${h.dims.join('x')} need ${need} bytes, the file has ${st.size}`);
    if (st.size > need) throw formatError(imagesFile, `IDX file has ${st.size - need} unexpected bytes after the ${h.dims.join('x')} data (wrong dimensions in the header?)`);
    checkCounts(count, labels, imagesFile, options.labels);
    dataset = new RecordFileDataset({ name, file: imagesFile, length: count, shape, dataOffset: h.dataOffset, labels, classNames: options.classNames });
  }
  if (count === 0) throw new HVAEError('ERR_HVAE_DATA', `${imagesFile}: the IDX file holds 0 images (empty dataset)`);
  return dataset;
}

function checkCounts(count: number, labels: Int32Array | undefined, imagesFile: string, labelsFile: string | undefined): void {
  if (labels && labels.length !== count) {
    throw formatError(imagesFile, `image and label counts disagree: ${count} images, but ${labelsFile} holds ${labels.length} labels`);
  }
}

/** Options of {@link writeIdx}. */
export interface WriteIdxOptions {
  /** Element type (default `'uint8'`). */
  dtype?: 'uint8' | 'int32';
}

/**
 * Writes an IDX file (uncompressed) from dimensions and elements, atomically (temp file + rename). Handy to
 * produce test fixtures or to convert data for streaming.
 */
export async function writeIdx(file: string, dims: readonly number[], data: ArrayLike<number>, options: WriteIdxOptions = {}): Promise<void> {
  const dtype = options.dtype ?? 'uint8';
  if (dtype !== 'uint8' && dtype !== 'int32') throw new HVAEError('ERR_HVAE_OPTION', `writeIdx ${file}: dtype must be 'uint8' or 'int32', got ${JSON.stringify(dtype)}`);
  if (!Array.isArray(dims) || dims.length < 1 || dims.length > 255 || !dims.every((d) => Number.isInteger(d) && d >= 0 && d <= 0xffffffff)) {
    throw new HVAEError('ERR_HVAE_SHAPE', `writeIdx ${file}: dimensions must be 1 to 255 integers in 0..2^32-1, got ${JSON.stringify(dims)}`);
  }
  const [lo, hi] = dtype === 'uint8' ? [0, 255] : [-(2 ** 31), 2 ** 31 - 1];
  if (!(dtype === 'uint8' && (data instanceof Uint8Array || data instanceof Uint8ClampedArray))) for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // Buffer#set would wrap 300 to 44 and -1 to 255, writeInt32BE would truncate 1.5: refuse instead.
    if (!Number.isInteger(v) || v < lo || v > hi) throw new HVAEError('ERR_HVAE_RANGE', `writeIdx ${file}: element ${i} is ${v}, not an integer in ${lo}..${hi} (${dtype})`);
  }
  const size = dtype === 'uint8' ? 1 : 4;
  const n = product(dims);
  if (n !== data.length) throw new HVAEError('ERR_HVAE_SHAPE', `writeIdx ${file}: dimensions ${dims.join('x')} need ${n} elements, got ${data.length}`);
  const buf = Buffer.alloc(4 + 4 * dims.length + n * size);
  buf[2] = dtype === 'uint8' ? 0x08 : 0x0c;
  buf[3] = dims.length;
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  const o = 4 + 4 * dims.length;
  if (dtype === 'uint8') buf.set(data as ArrayLike<number>, o);
  else for (let i = 0; i < n; i++) buf.writeInt32BE(data[i], o + 4 * i);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await fs.promises.writeFile(tmp, buf);
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(file, err, 'write');
  }
}
