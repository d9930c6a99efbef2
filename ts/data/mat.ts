/**
 * MATLAB level-5 MAT files, enough for SVHN's `train_32x32.mat` / `test_32x32.mat` / `extra_32x32.mat`: numeric
 * matrices, plain or zlib-compressed (`miCOMPRESSED`), little-endian. Variables are located with positional reads
 * and decompressed as streams, so only the decoded pixels are held in memory (SVHN extra: 1.6 GB).
 *
 * SVHN stores `X` as uint8 `[32, 32, 3, n]` in column-major order (per image: channel, column, row) and `y` as
 * doubles 1..10 where 10 means digit 0. {@link openSvhnMat} transposes `X` to NCHW and maps label 10 to 0, as
 * torchvision does.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { HVAEError } from '../errors.js';
import { ArrayDataset, Dataset } from './stream.js';
import { ChunkReader, formatError, ioError, product, readHead, statChecked, zlibError } from './util.js';

const miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7, miDOUBLE = 9, miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15;
const TYPE_SIZE: Record<number, number> = { [miINT8]: 1, [miUINT8]: 1, [miINT16]: 2, [miUINT16]: 2, [miINT32]: 4, [miUINT32]: 4, [miSINGLE]: 4, [miDOUBLE]: 8, [miINT64]: 8, [miUINT64]: 8 };
const CLASS_NAMES: Record<number, string> = { 1: 'cell', 2: 'struct', 3: 'object', 4: 'char', 5: 'sparse', 6: 'double', 7: 'single', 8: 'int8', 9: 'uint8', 10: 'int16', 11: 'uint16', 12: 'int32', 13: 'uint32', 14: 'int64', 15: 'uint64' };

/** A variable's header as found in a MAT file. */
export interface MatVariableInfo {
  /** Variable name. */
  name: string;
  /** MATLAB class, e.g. `'uint8'`, `'double'`. */
  className: string;
  /** Dimensions (column-major). */
  dims: number[];
  /** Whether the variable is stored compressed. */
  compressed: boolean;
}

interface Tag { type: number; nbytes: number; small?: Buffer }

async function readTag(r: ChunkReader, file: string, what: string): Promise<Tag> {
  const b = await r.read(8);
  if (b.length < 8) throw formatError(file, `truncated MAT file (inside ${what})`);
  const a = b.readUInt32LE(0);
  if (a >>> 16 !== 0) return { type: a & 0xffff, nbytes: a >>> 16, small: b.subarray(4, 4 + (a >>> 16)) };
  return { type: a, nbytes: b.readUInt32LE(4) };
}

async function readPadded(r: ChunkReader, t: Tag, file: string, what: string): Promise<Buffer> {
  if (t.small) return t.small;
  const b = await r.read(t.nbytes);
  if (b.length < t.nbytes) throw formatError(file, `truncated MAT file (inside ${what})`);
  const pad = (8 - (t.nbytes % 8)) % 8;
  if (pad) await r.skip(pad);
  return Buffer.from(b);
}

interface MatrixHeader extends MatVariableInfo { data: Tag }

async function readMatrixHeader(r: ChunkReader, file: string, compressed: boolean): Promise<MatrixHeader | undefined> {
  const top = await readTag(r, file, 'a variable');
  if (top.type !== miMATRIX) return undefined;
  const flags = await readPadded(r, await readTag(r, file, 'array flags'), file, 'array flags');
  const cls = flags.length >= 1 ? flags[0] : 0;
  const complex = flags.length >= 2 && (flags[1] & 0x08) !== 0;
  const dimsRaw = await readPadded(r, await readTag(r, file, 'dimensions'), file, 'dimensions');
  const dims: number[] = [];
  for (let i = 0; i + 4 <= dimsRaw.length; i += 4) dims.push(dimsRaw.readInt32LE(i));
  const nameRaw = await readPadded(r, await readTag(r, file, 'array name'), file, 'array name');
  const name = nameRaw.toString('latin1').replace(/\0+$/, '');
  const className = CLASS_NAMES[cls] ?? `class${cls}`;
  if (cls < 6 || cls > 15 || complex) return { name, className: complex ? `complex ${className}` : className, dims, compressed, data: { type: 0, nbytes: 0 } };
  const data = await readTag(r, file, `variable ${name}`);
  return { name, className, dims, compressed, data };
}

function rangeReader(file: string, start: number, length: number, compressed: boolean): ChunkReader {
  const s = fs.createReadStream(file, { start, end: start + length - 1, highWaterMark: 1 << 20 });
  let stream: NodeJS.ReadableStream = s;
  if (compressed) {
    const z = zlib.createInflate({ chunkSize: 1 << 18 });
    s.on('error', (err) => z.destroy(err));
    stream = s.pipe(z);
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const c of stream as AsyncIterable<Buffer>) yield c;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException)?.code ?? '';
      throw code.startsWith('Z_') ? zlibError(file, err, 'compressed MAT variable') : ioError(file, err);
    }
  }
  const r = new ChunkReader(chunks());
  const close = r.close.bind(r);
  r.close = async () => { await close(); s.destroy(); };
  return r;
}

/** Walks the top-level variables of a MAT file; `visit` gets each header and a reader positioned at its data. */
async function walkMat(file: string, visit: (h: MatrixHeader, r: ChunkReader) => Promise<void>): Promise<void> {
  const head = await readHead(file, 128);
  const text = head.toString('latin1', 0, Math.min(116, head.length));
  if (head.length < 128 || !text.startsWith('MATLAB')) throw formatError(file, 'not a MATLAB MAT file (no "MATLAB" header text)');
  if (/^MATLAB 7\.3/.test(text)) throw formatError(file, 'MATLAB v7.3 (HDF5) MAT files are not supported; save with -v7 or -v6');
  const endian = head.toString('latin1', 126, 128);
  if (endian !== 'IM') throw formatError(file, endian === 'MI' ? 'big-endian MAT files are not supported' : 'not a level-5 MAT file (bad endian indicator)');
  const size = (await statChecked(file)).size;
  let fh: fs.promises.FileHandle;
  try { fh = await fs.promises.open(file, 'r'); } catch (err) { throw ioError(file, err); }
  try {
    let pos = 128;
    const tagBuf = Buffer.alloc(8);
    while (pos + 8 <= size) {
      await fh.read(tagBuf, 0, 8, pos);
      const type = tagBuf.readUInt32LE(0);
      const nbytes = tagBuf.readUInt32LE(4);
      const end = pos + 8 + nbytes;
      if (end > size) throw formatError(file, `truncated MAT file: a variable of ${nbytes} bytes at byte ${pos} would end at byte ${end}, but the file has ${size} bytes`);
      if (type === miCOMPRESSED || type === miMATRIX) {
        const r = type === miCOMPRESSED ? rangeReader(file, pos + 8, nbytes, true) : rangeReader(file, pos, 8 + nbytes, false);
        try {
          const h = await readMatrixHeader(r, file, type === miCOMPRESSED);
          if (h) await visit(h, r);
        } finally {
          await r.close();
        }
      }
      pos = end + (type === miMATRIX ? (8 - (nbytes % 8)) % 8 : 0);
    }
  } finally {
    await fh.close();
  }
}

/** Lists the variables of a MAT file (name, class, dimensions). */
export async function listMatVariables(file: string): Promise<MatVariableInfo[]> {
  const out: MatVariableInfo[] = [];
  await walkMat(file, async (h) => { out.push({ name: h.name, className: h.className, dims: h.dims, compressed: h.compressed }); });
  return out;
}

function numbersOf(buf: Buffer, type: number, count: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (type) {
      case miINT8: out[i] = buf.readInt8(i); break;
      case miUINT8: out[i] = buf[i]; break;
      case miINT16: out[i] = buf.readInt16LE(2 * i); break;
      case miUINT16: out[i] = buf.readUInt16LE(2 * i); break;
      case miINT32: out[i] = buf.readInt32LE(4 * i); break;
      case miUINT32: out[i] = buf.readUInt32LE(4 * i); break;
      case miSINGLE: out[i] = buf.readFloatLE(4 * i); break;
      case miDOUBLE: out[i] = buf.readDoubleLE(8 * i); break;
      case miINT64: out[i] = Number(buf.readBigInt64LE(8 * i)); break;
      case miUINT64: out[i] = Number(buf.readBigUInt64LE(8 * i)); break;
    }
  }
  return out;
}

/** Options of {@link openSvhnMat}. */
export interface OpenSvhnOptions {
  /** Dataset name used in messages. */
  name?: string;
}

/** SVHN class names, indexed by label (label 0 is digit 0, stored as 10 in the MAT files). */
export const SVHN_CLASSES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/**
 * Reads an SVHN `*_32x32.mat` file into an in-memory dataset of 3x32x32 uint8 images with labels 0..9. Rejects with
 * `ERR_HVAE_FORMAT` (not a MAT file, missing or malformed `X`/`y`, counts disagree, truncated or corrupt data).
 */
export async function openSvhnMat(file: string, options: OpenSvhnOptions = {}): Promise<Dataset> {
  let images: Uint8Array | undefined;
  let shape: [number, number, number] = [3, 32, 32];
  let labels: Int32Array | undefined;
  await walkMat(file, async (h, r) => {
    if (h.name === 'X') {
      if (h.className !== 'uint8' || h.dims.length !== 4 || h.data.type !== miUINT8) {
        throw formatError(file, `variable X must be uint8 [h, w, c, n], got ${h.className} ${h.dims.join('x')}`);
      }
      const [H, W, C, N] = h.dims;
      if (!h.dims.every((d) => Number.isSafeInteger(d) && d > 0)) throw formatError(file, `variable X must have positive dimensions, got ${h.dims.join('x')}`);
      const per = H * W * C;
      const total = product(h.dims);
      if (h.data.nbytes !== total) throw formatError(file, `variable X holds ${h.data.nbytes} bytes, its dimensions need ${total}`);
      shape = [C, H, W];
      images = new Uint8Array(total);
      const k = Math.max(1, Math.floor((4 << 20) / per));
      const tmp = Buffer.allocUnsafe(k * per);
      for (let n0 = 0; n0 < N; n0 += k) {
        const m = Math.min(k, N - n0);
        const got = await r.readInto(tmp, 0, m * per);
        if (got < m * per) throw formatError(file, `truncated MAT file: variable X ends after ${n0 + Math.floor(got / per)} of ${N} images`);
        // Column-major [H, W, C] per image -> CHW.
        for (let j = 0; j < m; j++) {
          const s = j * per;
          const o = (n0 + j) * per;
          for (let c = 0; c < C; c++) {
            for (let x = 0; x < W; x++) {
              const sb = s + H * (x + W * c);
              const ob = o + c * H * W + x;
              for (let y = 0; y < H; y++) images[ob + y * W] = tmp[sb + y];
            }
          }
        }
      }
    } else if (h.name === 'y') {
      const size = TYPE_SIZE[h.data.type];
      const count = product(h.dims);
      if (!size || !Number.isFinite(count) || h.data.nbytes !== count * size) throw formatError(file, `variable y (${h.className} ${h.dims.join('x')}) is malformed`);
      const raw = h.data.small ?? await r.read(h.data.nbytes);
      if (raw.length < h.data.nbytes) throw formatError(file, 'truncated MAT file (inside variable y)');
      const v = numbersOf(raw, h.data.type, count);
      labels = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const x = v[i];
        if (!Number.isInteger(x) || x < 0 || x > 10) throw formatError(file, `label y[${i}] is ${x}; SVHN labels are 1..10`);
        labels[i] = x === 10 ? 0 : x;
      }
    }
  });
  if (!images) throw formatError(file, 'no uint8 variable X (images) found; is this an SVHN *_32x32.mat file?');
  if (!labels) throw formatError(file, 'no variable y (labels) found; is this an SVHN *_32x32.mat file?');
  const imgs = images as Uint8Array;
  const n = imgs.length / (shape[0] * shape[1] * shape[2]);
  if (labels.length !== n) throw formatError(file, `image and label counts disagree: ${n} images in X, ${labels.length} labels in y`);
  if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${file}: holds 0 images (empty dataset)`);
  return new ArrayDataset({ name: options.name ?? file, images: imgs, shape, labels, classNames: SVHN_CLASSES });
}

/** Encodes numeric variables as a level-5 MAT file (for fixtures and tests). */
export function encodeMat(vars: { name: string; className: 'uint8' | 'double'; dims: number[]; data: ArrayLike<number>; compress?: boolean }[]): Buffer {
  const header = Buffer.alloc(128, 0x20);
  header.write('MATLAB 5.0 MAT-file, written by hvae-native tests', 0, 'latin1');
  header.writeUInt16LE(0x0100, 124);
  header.write('IM', 126, 'latin1');
  const parts: Buffer[] = [header];
  const el = (type: number, body: Buffer): Buffer => {
    const tag = Buffer.alloc(8);
    tag.writeUInt32LE(type, 0); tag.writeUInt32LE(body.length, 4);
    return Buffer.concat([tag, body, Buffer.alloc((8 - (body.length % 8)) % 8)]);
  };
  for (const v of vars) {
    const flags = Buffer.alloc(8); flags[0] = v.className === 'uint8' ? 9 : 6;
    const dims = Buffer.alloc(4 * v.dims.length); v.dims.forEach((d, i) => dims.writeInt32LE(d, 4 * i));
    const name = Buffer.from(v.name, 'latin1');
    const data = v.className === 'uint8' ? Buffer.from(Uint8Array.from(v.data)) : Buffer.from(Float64Array.from(v.data).buffer);
    const body = Buffer.concat([el(miUINT32, flags), el(miINT32, dims), el(miINT8, name), el(v.className === 'uint8' ? miUINT8 : miDOUBLE, data)]);
    const matrix = el(miMATRIX, body);
    if (v.compress) {
      const z = zlib.deflateSync(matrix);
      const tag = Buffer.alloc(8); tag.writeUInt32LE(miCOMPRESSED, 0); tag.writeUInt32LE(z.length, 4);
      parts.push(tag, z);
    } else parts.push(matrix);
  }
  return Buffer.concat(parts);
}
