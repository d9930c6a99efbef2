/**
 * A small streaming tar reader (ustar, GNU long names, pax `path`/`size` records) over a file or a gzip stream. The
 * archive is read sequentially through `zlib.createGunzip`, so a `.tar.gz` is never decompressed as a whole; only the
 * entries the caller asks for are buffered.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { ChunkReader, fileIsGzip, formatError, ioError, statChecked, zlibError } from './util.js';

/** One tar entry. */
export interface TarEntry {
  /** Path inside the archive (`/` separated, no leading `./`). */
  name: string;
  /** Size of the entry's data in bytes. */
  size: number;
  /** Entry kind. */
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** The entry's bytes, for regular files accepted by the filter. */
  data?: Buffer;
}

/** Options of {@link readTar}. */
export interface ReadTarOptions {
  /** Which regular files to buffer (default: all). Entries not accepted are skipped without buffering. */
  filter?: (name: string, size: number) => boolean;
  /** Whether the file is gzip-compressed (default: detected from the magic number). */
  gzip?: boolean;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function cstr(b: Buffer, start: number, len: number): string {
  const end = b.indexOf(0, start);
  return b.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

function parseNumber(b: Buffer, start: number, len: number, file: string, what: string): number {
  if (b[start] & 0x80) {
    // GNU base-256 encoding.
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + b[i];
    return v;
  }
  const s = b.toString('latin1', start, start + len).replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw formatError(file, `corrupt tar header (${what} field ${JSON.stringify(s)} is not octal); not a tar archive or a damaged one`);
  return parseInt(s, 8);
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0) break;
    const len = parseInt(data.toString('latin1', p, sp), 10);
    if (!(len > 0) || p + len > data.length) break;
    const rec = data.toString('utf8', sp + 1, p + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    p += len;
  }
  return out;
}

/**
 * Iterates the entries of a tar or tar.gz file in archive order. Rejects with `ERR_HVAE_FORMAT` naming the file for
 * a truncated or corrupt gzip stream, a bad header checksum or an archive that ends inside an entry;
 * `ERR_HVAE_DATA` when the file is missing; `ERR_HVAE_IO` otherwise. Stopping the iteration early closes the file.
 */
export async function* readTar(file: string, options: ReadTarOptions = {}): AsyncGenerator<TarEntry, void, undefined> {
  await statChecked(file);
  const gz = options.gzip ?? await fileIsGzip(file);
  const src = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  let stream: NodeJS.ReadableStream = src;
  if (gz) {
    const g = zlib.createGunzip({ chunkSize: 1 << 18 });
    src.on('error', (err) => g.destroy(err));
    stream = src.pipe(g);
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const c of stream as AsyncIterable<Buffer>) yield c;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException)?.code ?? '';
      throw code.startsWith('Z_') || /unexpected end of file|incorrect header|invalid/i.test(String((err as Error)?.message)) ? zlibError(file, err) : ioError(file, err);
    }
  }
  const r = new ChunkReader(chunks());
  const filter = options.filter ?? (() => true);
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  let count = 0;
  try {
    while (true) {
      const hdr = await r.read(512);
      if (hdr.length === 0) {
        if (count === 0) throw formatError(file, gz ? 'the gzip stream holds no tar data (empty archive)' : 'empty file, not a tar archive');
        return; // no end-of-archive marker, but ended on a record boundary: accept
      }
      if (hdr.length < 512) throw formatError(file, `truncated tar archive: it ends inside a header (after ${count} entries)`);
      if (isZero(hdr)) {
        // The end-of-archive block. For tar.gz, read the gzip stream to its end so that gunzip checks the trailer
        // (CRC and length): a file cut inside the trailer must be refused, not accepted because the tar part is whole.
        if (gz) while ((await r.read(1 << 20)).length > 0);
        return;
      }
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : hdr[i];
      const stored = parseNumber(hdr, 148, 8, file, 'checksum');
      if (stored !== sum) {
        let signed = 0;
        for (let i = 0; i < 512; i++) signed += i >= 148 && i < 156 ? 0x20 : (hdr[i] << 24) >> 24;
        if (stored !== signed) {
          throw formatError(file, `corrupt tar header at byte ${r.position - 512} (checksum ${stored} != ${sum})${count === 0 ? '; not a tar archive?' : ''}`);
        }
      }
      let size = parseNumber(hdr, 124, 12, file, 'size');
      const flag = String.fromCharCode(hdr[156] || 0x30);
      const magic = hdr.toString('latin1', 257, 262);
      let name = cstr(hdr, 0, 100);
      if (magic === 'ustar') {
        const prefix = cstr(hdr, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      if (pax.size !== undefined && /^\d+$/.test(pax.size)) size = Number(pax.size);
      const padded = Math.ceil(size / 512) * 512;
      count++;
      if (flag === 'L' || flag === 'x' || flag === 'g') {
        const data = await r.read(size);
        if (data.length < size || (await r.skip(padded - size)) < padded - size) throw formatError(file, 'truncated tar archive (inside a long-name or pax header)');
        if (flag === 'L') longName = cstr(data, 0, data.length);
        else if (flag === 'x') pax = parsePax(data);
        continue;
      }
      name = (pax.path ?? longName ?? name).replace(/^\.\//, '');
      longName = undefined;
      pax = {};
      const type: TarEntry['type'] = flag === '0' || flag === '7' ? 'file' : flag === '5' ? 'directory' : flag === '2' || flag === '1' ? 'symlink' : 'other';
      const entry: TarEntry = { name, size, type };
      if (type === 'file' && filter(name, size)) {
        const data = await r.read(size);
        if (data.length < size) throw formatError(file, `truncated tar archive: entry ${name} needs ${size} bytes, only ${data.length} remain`);
        if ((await r.skip(padded - size)) < padded - size) throw formatError(file, `truncated tar archive after entry ${name}`);
        entry.data = data;
      } else if ((await r.skip(padded)) < padded) {
        throw formatError(file, `truncated tar archive: entry ${name} needs ${size} bytes, the archive ends first`);
      }
      yield entry;
    }
  } finally {
    await r.close();
    src.destroy();
  }
}

/**
 * Builds a ustar archive in memory (optionally gzip-compressed); used to write fixtures and tests. Names longer than
 * 100 bytes are split into the ustar prefix field.
 */
export function buildTar(entries: { name: string; data?: Uint8Array; type?: 'file' | 'directory' }[], options: { gzip?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(512);
    let name = e.name;
    let prefix = '';
    if (Buffer.byteLength(name) > 100) {
      const cut = name.lastIndexOf('/', name.length - 1);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    }
    const data = e.data ?? Buffer.alloc(0);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.write('00000000000\0', 136, 'latin1');
    h.write(e.type === 'directory' ? '5' : '0', 156, 'latin1');
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    h.write(prefix, 345, 155, 'utf8');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += h[i];
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    blocks.push(h, Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const tar = Buffer.concat(blocks);
  return options.gzip ? zlib.gzipSync(tar) : tar;
}
