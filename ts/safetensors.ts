/**
 * safetensors reading and (atomic) writing. Format: an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } }`, then the raw
 * little-endian tensor bytes. Every structural problem is an `ERR_HVAE_FORMAT` naming the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HVAEError } from './errors.js';

/** Element types handled here. */
export type SafeDType = 'F32' | 'U8' | 'I64' | 'F64' | 'I32';

/** One tensor read from a file. `data` is a view into the file buffer when aligned, else a copy. */
export interface SafeTensor {
  /** The element type as the file names it (e.g. `'F32'`). */
  dtype: SafeDType;
  /** The dimensions. */
  shape: number[];
  /** The values, row-major, in the typed array of `dtype`. */
  data: Float32Array | Uint8Array | BigInt64Array | Float64Array | Int32Array;
}

/** A parsed safetensors file. */
export interface SafeTensorsFile {
  /** Every tensor by name, in file order. */
  tensors: Map<string, SafeTensor>;
  /** The header's `__metadata__` (string to string; empty when absent). */
  metadata: Record<string, string>;
}

const ELEM: Record<SafeDType, number> = { F32: 4, U8: 1, I64: 8, F64: 8, I32: 4 };

function fmt(file: string, problem: string): HVAEError {
  return new HVAEError('ERR_HVAE_FORMAT', `${file}: ${problem}`);
}

/** Parses safetensors bytes. `name` is used in error messages. */
export function parseSafetensors(buf: Uint8Array, name = '<buffer>'): SafeTensorsFile {
  if (buf.byteLength < 8) throw fmt(name, `too short for a safetensors file (${buf.byteLength} bytes)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (!Number.isSafeInteger(n) || n <= 0 || 8 + n > buf.byteLength) {
    throw fmt(name, `header length ${n} does not fit in the file (${buf.byteLength} bytes): truncated or not a safetensors file`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new HVAEError('ERR_HVAE_FORMAT', `${name}: the header is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw fmt(name, 'the header is not a JSON object');
  const base = 8 + n;
  const dataLen = buf.byteLength - base;
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') {
      if (value !== null && (typeof value !== 'object' || Array.isArray(value))) throw fmt(name, '__metadata__ is not an object');
      for (const [k, x] of Object.entries(value ?? {})) if (typeof x !== 'string') throw fmt(name, `__metadata__ '${k}' is not a string (the format maps strings to strings)`);
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    if (!v || typeof v !== 'object' || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets) || v.data_offsets.length !== 2) {
      throw fmt(name, `tensor '${key}' has a malformed header entry`);
    }
    if (!v.shape.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw fmt(name, `tensor '${key}' has shape ${JSON.stringify(v.shape)}: dimensions must be non-negative integers`);
    }
    const dtype = v.dtype as SafeDType;
    if (!(dtype in ELEM)) throw fmt(name, `tensor '${key}' has unsupported dtype ${String(v.dtype)}`);
    const [b, e] = v.data_offsets;
    const count = v.shape.reduce((a, x) => a * x, 1);
    if (!Number.isInteger(b) || !Number.isInteger(e) || b < 0 || e < b || e > dataLen) {
      throw fmt(name, `tensor '${key}' has data offsets [${b}, ${e}] outside the data (${dataLen} bytes): truncated file?`);
    }
    if (e - b !== count * ELEM[dtype]) {
      throw fmt(name, `tensor '${key}' has ${e - b} bytes but shape [${v.shape.join(', ')}] of ${dtype} needs ${count * ELEM[dtype]}`);
    }
    const off = buf.byteOffset + base + b;
    const aligned = off % ELEM[dtype] === 0;
    const bytes = aligned ? buf.buffer : buf.buffer.slice(off, off + (e - b));
    const o = aligned ? off : 0;
    let data: SafeTensor['data'];
    switch (dtype) {
      case 'F32': data = new Float32Array(bytes, o, count); break;
      case 'U8': data = new Uint8Array(bytes, o, count); break;
      case 'I64': data = new BigInt64Array(bytes, o, count); break;
      case 'F64': data = new Float64Array(bytes, o, count); break;
      case 'I32': data = new Int32Array(bytes, o, count); break;
    }
    tensors.set(key, { dtype, shape: v.shape.slice(), data });
    ranges.push([b, e, key]);
  }
  // As the format (and the reference implementation) requires: the tensors tile the data exactly, so no two share
  // bytes and none lie outside every tensor (a damaged header or a file with bytes appended would otherwise load).
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let end = 0;
  for (const [b, e, key] of ranges) {
    if (b !== end) throw fmt(name, b < end ? `tensor '${key}' overlaps the tensor before it (bytes ${b}-${end})` : `bytes ${end}-${b} of the data belong to no tensor`);
    end = e;
  }
  if (end !== dataLen) throw fmt(name, `${dataLen - end} bytes after the last tensor belong to no tensor`);
  return { tensors, metadata };
}

/** Reads a safetensors file. Missing files are `ERR_HVAE_IO`; malformed ones `ERR_HVAE_FORMAT`. */
export function readSafetensors(file: string): SafeTensorsFile {
  if (typeof file !== 'string' || file === '') throw new HVAEError('ERR_HVAE_OPTION', 'readSafetensors needs a file path (a non-empty string)');
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new HVAEError('ERR_HVAE_IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseSafetensors(buf, file);
}

function dtypeOf(data: SafeTensor['data'], name: string): SafeDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Uint8Array) return 'U8';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  const got = data === null ? 'null' : typeof data === 'object' ? (data as object).constructor?.name ?? 'object' : typeof data;
  throw new HVAEError('ERR_HVAE_DTYPE', `tensor '${name}': data must be a Float32Array, Uint8Array, BigInt64Array, Float64Array or Int32Array, got ${got}`);
}

/** Serialises tensors (name-sorted, 8-byte-padded header) to one Buffer. */
export function serializeSafetensors(
  tensors: Map<string, { shape: number[]; data: SafeTensor['data'] }>,
  metadata: Record<string, string> = {},
): Buffer {
  if (!(tensors instanceof Map)) throw new HVAEError('ERR_HVAE_OPTION', 'tensors must be a Map of name to { shape, data }');
  if (metadata === null || typeof metadata !== 'object') throw new HVAEError('ERR_HVAE_OPTION', 'metadata must be an object of strings');
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new HVAEError('ERR_HVAE_OPTION', `metadata '${k}' must be a string, got ${typeof v} (safetensors metadata maps strings to strings)`);
  }
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    if (typeof n !== 'string' || n === '' || n === '__metadata__') {
      throw new HVAEError('ERR_HVAE_OPTION', `invalid tensor name ${JSON.stringify(n)} ('__metadata__' is reserved by the format)`);
    }
    const t = tensors.get(n)!;
    const dtype = dtypeOf(t?.data, n);
    if (!Array.isArray(t.shape) || !t.shape.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw new HVAEError('ERR_HVAE_SHAPE', `tensor '${n}': shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const count = t.shape.reduce((a, x) => a * x, 1);
    if (count !== t.data.length) {
      throw new HVAEError('ERR_HVAE_SHAPE', `tensor '${n}': shape [${t.shape.join(', ')}] needs ${count} values but data has ${t.data.length}`);
    }
    const len = t.data.byteLength;
    header[n] = { dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const hlen = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(8 + hlen + offset);
  out.writeBigUInt64LE(BigInt(hlen), 0);
  out.write(json, 8, 'utf8');
  let p = 8 + hlen;
  for (const n of names) {
    const t = tensors.get(n)!;
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, p);
    p += t.data.byteLength;
  }
  return out;
}

/**
 * Creates a directory and its missing parents, like `fs.mkdirSync(dir, { recursive: true })`, one level at a time:
 * Node's recursive mkdir loops forever where a filesystem answers ENOENT for a parent that exists (procfs:
 * `/proc/nope/x`); here that is an error like any other.
 */
export function mkdirp(dir: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    try {
      fs.statSync(d);
      break; // exists (a file in the way makes the mkdir below, or the caller's open, fail with ENOTDIR)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    missing.push(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(m).isDirectory()) throw e;
    }
  }
}

/**
 * {@link mkdirp}, then checks that `dir` is a folder; any failure is `ERR_HVAE_IO` naming `what` (for example
 * "the report folder"). Writers call it before long work, so a bad output path fails at once.
 */
export function ensureDir(dir: string, what = 'the folder'): void {
  try {
    mkdirp(dir);
  } catch (e) {
    throw new HVAEError('ERR_HVAE_IO', `cannot create ${what} ${dir}: ${(e as Error).message}`, { cause: e });
  }
  let isDir = false;
  try { isDir = fs.statSync(dir).isDirectory(); } catch { /* reported below */ }
  if (!isDir) throw new HVAEError('ERR_HVAE_IO', `cannot use ${what} ${dir}: it exists and is not a folder`);
}

/**
 * Writes a file atomically: a temporary file in the same directory, fsync, rename over the target, fsync of the
 * directory. A crash at any point leaves either the old file or the new one, never a torn one.
 */
export function writeFileAtomic(file: string, data: Uint8Array): void {
  if (typeof file !== 'string' || file === '') throw new HVAEError('ERR_HVAE_OPTION', 'writeFileAtomic needs a file path (a non-empty string)');
  if (!(data instanceof Uint8Array)) {
    throw new HVAEError('ERR_HVAE_OPTION', `writeFileAtomic needs the bytes as a Uint8Array or Buffer, got ${data === null ? 'null' : typeof data === 'object' ? (data as object).constructor?.name ?? 'object' : typeof data}`);
  }
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | undefined;
  try {
    mkdirp(dir);
    fd = fs.openSync(tmp, 'w', 0o644);
    let off = 0;
    while (off < data.byteLength) off += fs.writeSync(fd, data, off, data.byteLength - off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
    try {
      const dfd = fs.openSync(dir, 'r');
      try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
    } catch { /* directories cannot be fsynced on every filesystem */ }
  } catch (e) {
    if (fd !== undefined) { try { fs.closeSync(fd); } catch { /* already failing */ } }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    throw new HVAEError('ERR_HVAE_IO', `cannot write ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** Serialises and writes tensors atomically. */
export function writeSafetensors(
  file: string,
  tensors: Map<string, { shape: number[]; data: SafeTensor['data'] }>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
