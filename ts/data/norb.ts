/**
 * The NORB binary matrix format of SmallNORB (`smallnorb-…-dat.mat`, `-cat.mat`, raw or `.gz`): a little-endian
 * int32 magic (0x1E3D4C55 uint8, 0x1E3D4C54 int32, …), the number of dimensions, max(3, ndim) int32 dimensions, then
 * the data. The `-dat` file holds `[24300, 2, 96, 96]` uint8 stereo pairs; image i of the dataset is camera `i % 2`
 * of pair `⌊i/2⌋` (the file order), with the category of pair `⌊i/2⌋` (ALGORITHM.md §1.1).
 */
import { HVAEError } from '../errors.js';
import { ArrayDataset, Dataset, RecordFileDataset } from './stream.js';
import { fileIsGzip, formatError, gunzipChecked, isGzip, product, readFileChecked, readHead, statChecked } from './util.js';

/** SmallNORB category names, indexed by label. */
export const SMALLNORB_CLASSES: readonly string[] = ['animal', 'human', 'airplane', 'truck', 'car'];

const TYPES: Record<number, { dtype: 'uint8' | 'int32' | 'float32' | 'float64' | 'int16'; size: number }> = {
  0x1e3d4c55: { dtype: 'uint8', size: 1 },
  0x1e3d4c54: { dtype: 'int32', size: 4 },
  0x1e3d4c51: { dtype: 'float32', size: 4 },
  0x1e3d4c53: { dtype: 'float64', size: 8 },
  0x1e3d4c56: { dtype: 'int16', size: 2 },
};

/** A NORB matrix header. */
export interface NorbHeader {
  /** Element type. */
  dtype: 'uint8' | 'int32' | 'float32' | 'float64' | 'int16';
  /** Element size in bytes. */
  elementSize: number;
  /** The `ndim` dimensions. */
  dims: number[];
  /** Byte offset of the data. */
  dataOffset: number;
}

/** Parses a NORB matrix header. Throws `ERR_HVAE_FORMAT` naming `file`. */
export function parseNorbHeader(buf: Uint8Array, file = '<buffer>'): NorbHeader {
  if (buf.length < 8) throw formatError(file, 'not a NORB matrix file: shorter than its 8-byte header');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, true);
  const t = TYPES[magic];
  if (!t) throw formatError(file, `not a NORB matrix file: wrong magic number 0x${magic.toString(16)} (expected 0x1e3d4c55 for uint8 or 0x1e3d4c54 for int32)`);
  const ndim = dv.getInt32(4, true);
  if (ndim < 1 || ndim > 16) throw formatError(file, `NORB header declares ${ndim} dimensions`);
  const stored = Math.max(3, ndim);
  const dataOffset = 8 + 4 * stored;
  if (buf.length < dataOffset) throw formatError(file, 'truncated NORB header');
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) {
    const d = dv.getInt32(8 + 4 * i, true);
    if (d < 0) throw formatError(file, `NORB dimension ${i} is negative (${d})`);
    dims.push(d);
  }
  return { dtype: t.dtype, elementSize: t.size, dims, dataOffset };
}

async function readCategories(file: string): Promise<Int32Array> {
  let buf = await readFileChecked(file);
  if (isGzip(buf)) buf = await gunzipChecked(buf, file);
  const h = parseNorbHeader(buf, file);
  if (h.dtype !== 'int32' || h.dims.length !== 1) throw formatError(file, `expected a 1-D int32 NORB category file, got ${h.dtype} ${h.dims.join('x')}`);
  const n = h.dims[0];
  if (buf.length !== h.dataOffset + 4 * n) throw formatError(file, `${buf.length < h.dataOffset + 4 * n ? 'truncated' : 'unexpected trailing bytes'}: ${n} categories need ${h.dataOffset + 4 * n} bytes, the file has ${buf.length}`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readInt32LE(h.dataOffset + 4 * i);
  return out;
}

/** Options of {@link openSmallNorb}. */
export interface OpenNorbOptions {
  /** The `-cat.mat` file with one category per stereo pair. */
  categories?: string;
  /** Dataset name used in messages. */
  name?: string;
}

/**
 * Opens a SmallNORB `-dat.mat` file as a dataset of `2 * pairs` 1x96x96 images (lazily with positional reads when
 * uncompressed, in memory when gzip). Rejects with `ERR_HVAE_FORMAT` for a bad header, a size mismatch or category
 * count mismatch.
 */
export async function openSmallNorb(datFile: string, options: OpenNorbOptions = {}): Promise<Dataset> {
  const pairs = options.categories ? await readCategories(options.categories) : undefined;
  const gz = await fileIsGzip(datFile);
  let buf: Buffer | undefined;
  let h: NorbHeader;
  let size: number;
  if (gz) {
    buf = await gunzipChecked(await readFileChecked(datFile), datFile);
    h = parseNorbHeader(buf, datFile);
    size = buf.length;
  } else {
    h = parseNorbHeader(await readHead(datFile, 8 + 64), datFile);
    size = (await statChecked(datFile)).size;
  }
  if (h.dtype !== 'uint8' || h.dims.length !== 4 || h.dims[1] !== 2) {
    throw formatError(datFile, `expected a uint8 [pairs, 2, h, w] NORB image file, got ${h.dtype} ${h.dims.join('x')}`);
  }
  const need = h.dataOffset + product(h.dims);
  if (size !== need) throw formatError(datFile, `${size < need ? 'truncated' : 'unexpected trailing bytes'}: ${h.dims.join('x')} needs ${need} bytes, the file has ${size}`);
  const n = h.dims[0] * 2;
  if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${datFile}: the file holds 0 images (empty dataset)`);
  if (pairs && pairs.length !== h.dims[0]) {
    throw formatError(datFile, `image and label counts disagree: ${h.dims[0]} stereo pairs, but ${options.categories} holds ${pairs.length} categories`);
  }
  const labels = pairs ? Int32Array.from({ length: n }, (_, i) => pairs[i >> 1]) : undefined;
  const shape: [number, number, number] = [1, h.dims[2], h.dims[3]];
  const name = options.name ?? datFile;
  const classNames = labels ? SMALLNORB_CLASSES : undefined;
  if (buf) return new ArrayDataset({ name, images: buf.subarray(h.dataOffset, need), shape, labels, classNames });
  return new RecordFileDataset({ name, file: datFile, length: n, shape, dataOffset: h.dataOffset, labels, classNames });
}

/** Encodes a NORB matrix (for fixtures and tests). */
export function encodeNorb(dtype: 'uint8' | 'int32', dims: readonly number[], data: ArrayLike<number>): Buffer {
  const stored = Math.max(3, dims.length);
  const size = dtype === 'uint8' ? 1 : 4;
  const off = 8 + 4 * stored;
  const buf = Buffer.alloc(off + data.length * size);
  buf.writeUInt32LE(dtype === 'uint8' ? 0x1e3d4c55 : 0x1e3d4c54, 0);
  buf.writeInt32LE(dims.length, 4);
  for (let i = 0; i < stored; i++) buf.writeInt32LE(i < dims.length ? dims[i] : 1, 8 + 4 * i);
  for (let i = 0; i < data.length; i++) {
    if (size === 1) buf[off + i] = data[i]; else buf.writeInt32LE(data[i], off + 4 * i);
  }
  return buf;
}
