/**
 * NumPy `.npy` files (format versions 1, 2 and 3): the `\x93NUMPY` magic, a version, a header length, a Python dict
 * literal `{'descr': '|u1', 'fortran_order': False, 'shape': (n, h, w), }`, then the C-order data.
 *
 * Images must be uint8 (`|u1`) with shape `[n, h, w]`, `[n, c, h, w]` or `[n, h, w, c]` (see {@link NpyLayout});
 * labels may be any integer type. Uncompressed files are read lazily with positional reads; `.npy.gz` is
 * decompressed into memory.
 */
import { HVAEError } from '../errors.js';
import { ArrayDataset, Dataset, hwcToChw, ImageShape, RecordFileDataset } from './stream.js';
import { fileIsGzip, formatError, gunzipChecked, gunzipSyncChecked, isGzip, product, readFileChecked, readHead, statChecked } from './util.js';

/** The parsed header of an `.npy` file. */
export interface NpyHeader {
  /** NumPy type string, e.g. `'|u1'`, `'<i8'`. */
  descr: string;
  /** Whether the data is stored column-major (not supported for images). */
  fortranOrder: boolean;
  /** Array shape. */
  shape: number[];
  /** Byte offset of the data. */
  dataOffset: number;
  /** Bytes per element. */
  itemSize: number;
}

/** A parsed `.npy` array. 64-bit integers are converted to `Float64Array` (exact up to 2^53). */
export interface NpyArray extends NpyHeader {
  /** Elements in C order. */
  data: Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Supported element kinds and sizes, keyed by the type string without byte order. */
const KINDS: Record<string, number> = { u1: 1, i1: 1, b1: 1, u2: 2, i2: 2, u4: 4, i4: 4, u8: 8, i8: 8, f4: 4, f8: 8 };

/**
 * Parses the header of an `.npy` file from its first bytes. Throws `ERR_HVAE_FORMAT` naming `file` for a wrong magic
 * number, an unknown version, a truncated or malformed header, or an unsupported dtype.
 */
export function parseNpyHeader(buf: Uint8Array, file = '<buffer>'): NpyHeader {
  if (buf.length < 10 || !MAGIC.every((b, i) => buf[i] === b)) {
    throw formatError(file, 'not a .npy file: wrong magic number (expected \\x93NUMPY)');
  }
  const major = buf[6];
  let headerLen: number;
  let start: number;
  if (major === 1) { headerLen = buf[8] | (buf[9] << 8); start = 10; }
  else if (major === 2 || major === 3) {
    if (buf.length < 12) throw formatError(file, 'truncated .npy header');
    headerLen = (buf[8] | (buf[9] << 8) | (buf[10] << 16)) + buf[11] * 2 ** 24;
    start = 12;
  } else throw formatError(file, `unsupported .npy format version ${major}.${buf[7]} (supported: 1.x, 2.x, 3.x)`);
  if (buf.length < start + headerLen) {
    throw formatError(file, `truncated .npy header: it declares ${headerLen} bytes, only ${buf.length - start} are present`);
  }
  const text = Buffer.from(buf.buffer, buf.byteOffset + start, headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const descrM = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  if (!descrM) {
    if (/['"]descr['"]\s*:\s*\[/.test(text)) throw formatError(file, 'structured (record) dtypes are not supported; save a plain uint8 array');
    throw formatError(file, `malformed .npy header (no 'descr'): ${JSON.stringify(text.slice(0, 120))}`);
  }
  const fortranM = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  if (!fortranM) throw formatError(file, `malformed .npy header (no 'fortran_order'): ${JSON.stringify(text.slice(0, 120))}`);
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!shapeM) throw formatError(file, `malformed .npy header (no 'shape'): ${JSON.stringify(text.slice(0, 120))}`);
  const shape: number[] = [];
  for (const part of shapeM[1].split(',')) {
    const s = part.trim().replace(/L$/, '');
    if (s === '') continue;
    if (!/^\d+$/.test(s)) throw formatError(file, `malformed .npy shape (${shapeM[1]})`);
    const v = Number(s);
    if (!Number.isSafeInteger(v)) throw formatError(file, `.npy dimension ${s} is too large`);
    shape.push(v);
  }
  const descr = descrM[1];
  const m = /^([<>|=]?)([a-zA-Z]\d+)$/.exec(descr);
  const itemSize = m ? KINDS[m[2]] : undefined;
  if (!m || itemSize === undefined) {
    throw formatError(file, `unsupported .npy dtype '${descr}' (supported: u1 i1 b1 u2 i2 u4 i4 u8 i8 f4 f8)`);
  }
  return { descr, fortranOrder: fortranM[1] === 'True', shape, dataOffset: start + headerLen, itemSize };
}

/**
 * Parses a complete `.npy` file held in memory (gzip-compressed or not). Throws only `ERR_HVAE_FORMAT` errors.
 */
export function parseNpy(buf: Uint8Array, file = '<buffer>'): NpyArray {
  if (isGzip(buf)) buf = gunzipSyncChecked(buf, file);
  const h = parseNpyHeader(buf, file);
  const count = product(h.shape);
  const need = h.dataOffset + count * h.itemSize;
  if (!Number.isFinite(need) || buf.length < need) {
    throw formatError(file, `truncated .npy file: shape (${h.shape.join(', ')}) of ${h.descr} needs ${need} bytes, the file has ${buf.length}`);
  }
  if (buf.length > need) {
    throw formatError(file, `.npy file has ${buf.length - need} unexpected bytes after the data`);
  }
  return { ...h, data: decodeNpy(buf.subarray(h.dataOffset, need), h.descr, count) };
}

function decodeNpy(bytes: Uint8Array, descr: string, count: number): NpyArray['data'] {
  const big = descr.startsWith('>');
  const kind = descr.replace(/^[<>|=]/, '');
  if (kind === 'u1' || kind === 'b1') return bytes;
  if (kind === 'i1') return new Int8Array(bytes.buffer, bytes.byteOffset, count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = !big;
  switch (kind) {
    case 'u2': { const a = new Uint16Array(count); for (let i = 0; i < count; i++) a[i] = dv.getUint16(2 * i, le); return a; }
    case 'i2': { const a = new Int16Array(count); for (let i = 0; i < count; i++) a[i] = dv.getInt16(2 * i, le); return a; }
    case 'u4': { const a = new Uint32Array(count); for (let i = 0; i < count; i++) a[i] = dv.getUint32(4 * i, le); return a; }
    case 'i4': { const a = new Int32Array(count); for (let i = 0; i < count; i++) a[i] = dv.getInt32(4 * i, le); return a; }
    case 'f4': { const a = new Float32Array(count); for (let i = 0; i < count; i++) a[i] = dv.getFloat32(4 * i, le); return a; }
    case 'f8': { const a = new Float64Array(count); for (let i = 0; i < count; i++) a[i] = dv.getFloat64(8 * i, le); return a; }
    case 'u8': { const a = new Float64Array(count); for (let i = 0; i < count; i++) a[i] = Number(dv.getBigUint64(8 * i, le)); return a; }
    case 'i8': { const a = new Float64Array(count); for (let i = 0; i < count; i++) a[i] = Number(dv.getBigInt64(8 * i, le)); return a; }
    default: throw new HVAEError('ERR_HVAE_FORMAT', `unsupported .npy dtype '${descr}'`);
  }
}

/** Reads and parses a whole `.npy` file (raw or gzip). */
export async function readNpy(file: string): Promise<NpyArray> {
  const raw = await readFileChecked(file);
  return parseNpy(isGzip(raw) ? await gunzipChecked(raw, file) : raw, file);
}

/**
 * How a 4-D image array is laid out: `'NCHW'`, `'NHWC'` (Keras/TensorFlow style, transposed on read), or `'auto'`
 * (default): NHWC when the last dimension is 1 or 3 and the second is neither, else NCHW.
 */
export type NpyLayout = 'auto' | 'NCHW' | 'NHWC';

/** Image shape and stored layout of an image array. Throws `ERR_HVAE_FORMAT`, or `ERR_HVAE_OPTION` for an unknown layout. */
export function imageLayout(shape: readonly number[], descr: string, file: string, layout: NpyLayout = 'auto'): { shape: ImageShape; layout: 'CHW' | 'HWC' } {
  if (layout !== 'auto' && layout !== 'NCHW' && layout !== 'NHWC') {
    throw new HVAEError('ERR_HVAE_OPTION', `layout must be 'auto', 'NCHW' or 'NHWC', got ${JSON.stringify(layout)}`);
  }
  const kind = descr.replace(/^[<>|=]/, '');
  if (kind !== 'u1') {
    throw formatError(file, `images must be uint8 (dtype u1), got '${descr}'; convert with e.g. numpy's x.astype(np.uint8) (values 0..255)`);
  }
  if (shape.length === 3) return { shape: [1, shape[1], shape[2]], layout: 'CHW' };
  if (shape.length === 4) {
    const nhwc = layout === 'NHWC' || (layout === 'auto' && [1, 3].includes(shape[3]) && ![1, 3].includes(shape[1]));
    return nhwc ? { shape: [shape[3], shape[1], shape[2]], layout: 'HWC' } : { shape: [shape[1], shape[2], shape[3]], layout: 'CHW' };
  }
  throw formatError(file, `expected an image array of shape [n, h, w], [n, c, h, w] or [n, h, w, c], got (${shape.join(', ')})`);
}

/** Converts an integer array into labels. Throws `ERR_HVAE_FORMAT` for non-integer or non-1-D arrays. */
export function npyLabels(a: NpyArray, file: string): Int32Array {
  const flat = a.shape.length === 1 || (a.shape.length === 2 && a.shape[1] === 1);
  if (!flat) {
    const oneHot = a.shape.length === 2 ? '; one-hot labels? convert them with y.argmax(axis=1), or leave them out (npz: labels: false)' : '';
    throw formatError(file, `labels must be a 1-D array, got shape (${a.shape.join(', ')})${oneHot}`);
  }
  const out = new Int32Array(a.shape[0]);
  for (let i = 0; i < out.length; i++) {
    const v = a.data[i];
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw formatError(file, `label ${i} is ${v}, labels must be 32-bit integers`);
    out[i] = v;
  }
  return out;
}

/** Builds an in-memory dataset from an image array. */
export function npyImageDataset(a: NpyArray, file: string, options: { name?: string; labels?: Int32Array; labelsFile?: string; layout?: NpyLayout; classNames?: readonly string[] }): Dataset {
  if (a.fortranOrder) throw formatError(file, 'Fortran-order arrays are not supported; save with np.ascontiguousarray(x)');
  const { shape, layout } = imageLayout(a.shape, a.descr, file, options.layout);
  const n = a.shape[0];
  if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${file}: the array holds 0 images (empty dataset)`);
  if (options.labels && options.labels.length !== n) {
    throw formatError(file, `image and label counts disagree: ${n} images, but ${options.labelsFile ?? 'the labels'} hold ${options.labels.length}`);
  }
  let images = a.data as Uint8Array;
  if (layout === 'HWC' && shape[0] > 1) {
    const per = shape[0] * shape[1] * shape[2];
    const out = new Uint8Array(images.length);
    for (let i = 0; i < n; i++) hwcToChw(images.subarray(i * per, (i + 1) * per), out, i * per, shape);
    images = out;
  }
  return new ArrayDataset({ name: options.name ?? file, images, shape, labels: options.labels, classNames: options.classNames });
}

/** Options of {@link openNpy}. */
export interface OpenNpyOptions {
  /** A `.npy` file of integer labels (one per image). */
  labels?: string;
  /** Layout of 4-D arrays (default `'auto'`). */
  layout?: NpyLayout;
  /** Dataset name used in messages (default: the file path). */
  name?: string;
  /** Class names indexed by label. */
  classNames?: readonly string[];
}

/**
 * Opens a uint8 `.npy` image array (and optional label array) as a {@link Dataset}: positional reads for an
 * uncompressed file, in memory for `.npy.gz`. Rejects with `ERR_HVAE_FORMAT`, `ERR_HVAE_DATA` or `ERR_HVAE_IO`.
 */
export async function openNpy(file: string, options: OpenNpyOptions = {}): Promise<Dataset> {
  const labels = options.labels ? npyLabels(await readNpy(options.labels), options.labels) : undefined;
  if (await fileIsGzip(file)) {
    return npyImageDataset(await readNpy(file), file, { ...options, labels, labelsFile: options.labels });
  }
  const head = await readHead(file, 65536 + 12);
  const h = parseNpyHeader(head, file);
  if (h.fortranOrder) throw formatError(file, 'Fortran-order arrays are not supported; save with np.ascontiguousarray(x)');
  const { shape, layout } = imageLayout(h.shape, h.descr, file, options.layout);
  const n = h.shape[0];
  const st = await statChecked(file);
  const need = h.dataOffset + product(h.shape);
  if (st.size < need) throw formatError(file, `truncated .npy file: shape (${h.shape.join(', ')}) needs ${need} bytes, the file has ${st.size}`);
  if (st.size > need) throw formatError(file, `.npy file has ${st.size - need} unexpected bytes after the data`);
  if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${file}: the array holds 0 images (empty dataset)`);
  if (labels && labels.length !== n) {
    throw formatError(file, `image and label counts disagree: ${n} images, but ${options.labels} holds ${labels.length} labels`);
  }
  return new RecordFileDataset({ name: options.name ?? file, file, length: n, shape, dataOffset: h.dataOffset, layout, labels, classNames: options.classNames });
}

/** Serializes a uint8 or int32 array as `.npy` (version 1.0), e.g. to write fixtures. */
export function encodeNpy(shape: readonly number[], data: Uint8Array | Int32Array): Buffer {
  const descr = data instanceof Uint8Array ? '|u1' : '<i4';
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const hb = Buffer.from(header, 'latin1');
  const out = Buffer.alloc(10 + hb.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1; out[7] = 0;
  out.writeUInt16LE(hb.length, 8);
  hb.copy(out, 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + hb.length);
  return out;
}
