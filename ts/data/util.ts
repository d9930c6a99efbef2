/**
 * Small helpers shared by the data readers: error construction, gzip handling with clear messages, hashing,
 * natural sorting and a bounded-concurrency map. Internal to `ts/data`, but exported for the tests.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { HVAEError, HVAEErrorCode } from '../errors.js';

/** Builds an HVAEError whose message starts with the file it is about. */
export function fileError(code: HVAEErrorCode, file: string, problem: string, cause?: unknown): HVAEError {
  return new HVAEError(code, `${file}: ${problem}`, cause === undefined ? undefined : { cause });
}

/** `ERR_HVAE_FORMAT` for `file`. */
export function formatError(file: string, problem: string, cause?: unknown): HVAEError {
  return fileError('ERR_HVAE_FORMAT', file, problem, cause);
}

/** True when the bytes start with the gzip magic number 1f 8b. */
export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** Largest output a synchronous gunzip of a buffer may produce (guards fuzzed headers against huge allocations). */
export const MAX_GUNZIP_BYTES = 2 ** 32 - 1;

/** Translates a zlib error into an `ERR_HVAE_FORMAT` error naming the file. */
export function zlibError(file: string, err: unknown, what = 'gzip'): HVAEError {
  if (err instanceof HVAEError) return err;
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (e?.code === 'Z_BUF_ERROR' || /unexpected end of file/i.test(msg)) {
    return formatError(file, `${what} data is truncated (unexpected end of file); the file is incomplete, download it again`, err);
  }
  if (e?.code === 'ERR_BUFFER_TOO_LARGE' || e?.code === 'ERR_OUT_OF_RANGE' || /too large|Cannot create a Buffer/i.test(msg)) {
    return formatError(file, `${what} data decompresses to more than ${MAX_GUNZIP_BYTES} bytes; gunzip it and open the uncompressed file`, err);
  }
  return formatError(file, `${what} data is corrupt (${msg})`, err);
}

/** Synchronous gunzip with truncation/corruption mapped to `ERR_HVAE_FORMAT`. */
export function gunzipSyncChecked(buf: Uint8Array, file: string, maxOutputLength = MAX_GUNZIP_BYTES): Buffer {
  try {
    return zlib.gunzipSync(buf, { maxOutputLength });
  } catch (err) {
    throw zlibError(file, err);
  }
}

/** Asynchronous gunzip (runs on the libuv thread pool) with clear errors. */
export function gunzipChecked(buf: Uint8Array, file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.gunzip(buf, { maxOutputLength: MAX_GUNZIP_BYTES }, (err, out) => {
      if (err) reject(zlibError(file, err));
      else resolve(out);
    });
  });
}

/** Asynchronous raw-deflate inflate (zip entries) with clear errors. */
export function inflateRawChecked(buf: Uint8Array, file: string, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.inflateRaw(buf, { maxOutputLength: MAX_GUNZIP_BYTES }, (err, out) => {
      if (err) reject(zlibError(file, err, what));
      else resolve(out);
    });
  });
}

/** Maps an fs error to `ERR_HVAE_DATA` (missing) or `ERR_HVAE_IO` (anything else), naming the file. */
export function ioError(file: string, err: unknown, doing = 'read'): HVAEError {
  if (err instanceof HVAEError) return err;
  const e = err as NodeJS.ErrnoException;
  // A missing input is a data problem; a missing folder for an output is an I/O one.
  if (e?.code === 'ENOENT') {
    return doing === 'read' ? fileError('ERR_HVAE_DATA', file, 'file not found (cannot read it)', err) : fileError('ERR_HVAE_IO', file, `its folder does not exist (cannot ${doing} it)`, err);
  }
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return fileError('ERR_HVAE_IO', file, `permission denied (cannot ${doing} it)`, err);
  if (e?.code === 'EISDIR') return fileError('ERR_HVAE_IO', file, `is a directory, expected a file`, err);
  return fileError('ERR_HVAE_IO', file, `cannot ${doing} it: ${e?.message ?? String(err)}`, err);
}

/** Reads a whole file, mapping fs errors to HVAEErrors. */
export async function readFileChecked(file: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(file);
  } catch (err) {
    throw ioError(file, err);
  }
}

/** Reads a whole file and gunzips it when it starts with the gzip magic number. */
export async function readMaybeGzip(file: string): Promise<{ data: Buffer; compressed: boolean }> {
  const raw = await readFileChecked(file);
  if (isGzip(raw)) return { data: await gunzipChecked(raw, file), compressed: true };
  return { data: raw, compressed: false };
}

/** `fs.stat` with HVAEErrors. */
export async function statChecked(file: string): Promise<fs.Stats> {
  try {
    return await fs.promises.stat(file);
  } catch (err) {
    throw ioError(file, err, 'stat');
  }
}

/** Reads the first `n` bytes of a file (fewer if the file is shorter). */
export async function readHead(file: string, n: number): Promise<Buffer> {
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(file, 'r');
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    throw ioError(file, err);
  } finally {
    await fh?.close();
  }
}

/** True when the file starts with the gzip magic number. */
export async function fileIsGzip(file: string): Promise<boolean> {
  return isGzip(await readHead(file, 2));
}

/** Hex digests of a file, computed in one streaming pass. */
export async function hashFile(file: string, algorithms: readonly string[] = ['sha256']): Promise<Record<string, string>> {
  const hashes = algorithms.map((a) => crypto.createHash(a));
  try {
    await new Promise<void>((resolve, reject) => {
      const s = fs.createReadStream(file, { highWaterMark: 1 << 20 });
      s.on('data', (chunk) => { for (const h of hashes) h.update(chunk); });
      s.on('error', reject);
      s.on('end', resolve);
    });
  } catch (err) {
    throw ioError(file, err);
  }
  const out: Record<string, string> = {};
  algorithms.forEach((a, i) => { out[a] = hashes[i].digest('hex'); });
  return out;
}

/** sha256 of a buffer, hex. */
export function sha256(buf: Uint8Array): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'variant' });
/** Natural ("1, 2, 10") comparison of paths, stable across platforms. */
export function naturalCompare(a: string, b: string): number {
  const c = collator.compare(a, b);
  if (c !== 0) return c;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Runs `fn` over `items` with at most `concurrency` calls in flight, preserving order in the result.
 */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed: unknown;
  let hasFailed = false;
  const worker = async (): Promise<void> => {
    while (!hasFailed) {
      const i = next++;
      if (i >= items.length) return;
      try {
        out[i] = await fn(items[i], i);
      } catch (err) {
        if (!hasFailed) { hasFailed = true; failed = err; }
        return;
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let k = 0; k < Math.max(1, Math.min(concurrency, items.length)); k++) workers.push(worker());
  await Promise.all(workers);
  if (hasFailed) throw failed;
  return out;
}

/**
 * A counting semaphore for bounded concurrency when the items arrive as a stream (e.g. tar entries).
 */
export class Limiter {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  /** Waits for a free slot. */
  async acquire(): Promise<void> {
    if (this.active < this.limit) { this.active++; return; }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.active++;
  }
  /** Frees a slot. */
  release(): void {
    this.active--;
    const w = this.waiters.shift();
    if (w) w();
  }
}

/** Formats a byte count for messages. */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Product of dimensions, or `Infinity` when it exceeds 2^53. */
export function product(dims: readonly number[]): number {
  let p = 1;
  for (const d of dims) {
    p *= d;
    if (!Number.isSafeInteger(p)) return Infinity;
  }
  return p;
}

/** Validates a positive integer option. */
export function positiveInt(value: unknown, name: string, dflt?: number): number {
  if (value === undefined && dflt !== undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new HVAEError('ERR_HVAE_OPTION', `${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Resolves `p` relative to `base` unless absolute. */
export function resolveFrom(base: string, p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(base, p);
}

/** A readable, pull-based view over an async iterable of byte chunks (a stream). */
export class ChunkReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  /** Total bytes consumed so far (the position in the stream). */
  position = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) { this.done = true; break; }
      const b = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (b.length) { this.chunks.push(b); this.buffered += b.length; }
    }
  }

  /** Reads exactly `n` bytes; returns fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    let out: Buffer;
    if (this.chunks.length && this.chunks[0].length >= take) {
      out = this.chunks[0].subarray(0, take);
      if (this.chunks[0].length === take) this.chunks.shift();
      else this.chunks[0] = this.chunks[0].subarray(take);
    } else {
      out = Buffer.allocUnsafe(take);
      let o = 0;
      while (o < take) {
        const c = this.chunks[0];
        const k = Math.min(c.length, take - o);
        c.copy(out, o, 0, k);
        o += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= take;
    this.position += take;
    return out;
  }

  /** Copies exactly `n` bytes into `dest` at `offset`, chunk by chunk; returns the bytes copied. */
  async readInto(dest: Uint8Array, offset: number, n: number): Promise<number> {
    let copied = 0;
    while (copied < n) {
      if (this.buffered === 0) {
        await this.fill(1);
        if (this.buffered === 0) break;
      }
      const c = this.chunks[0];
      const k = Math.min(c.length, n - copied);
      dest.set(c.subarray(0, k), offset + copied);
      copied += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.buffered -= k;
      this.position += k;
    }
    return copied;
  }

  /** Skips `n` bytes; returns the number skipped (fewer only at the end). */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      if (this.buffered === 0) {
        await this.fill(1);
        if (this.buffered === 0) break;
      }
      const c = this.chunks[0];
      const k = Math.min(c.length, n - skipped);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.buffered -= k;
      this.position += k;
      skipped += k;
    }
    return skipped;
  }

  /** Stops the underlying iterator (closes the stream). */
  async close(): Promise<void> {
    this.done = true;
    this.chunks = [];
    this.buffered = 0;
    if (this.it.return) await this.it.return(undefined);
  }
}
