/**
 * A small ZIP reader (enough for `.npz` files and zip archives of images such as Omniglot's): it reads the
 * end-of-central-directory record (ZIP64 included), the central directory, and stored (method 0) or deflated
 * (method 8) entries with positional reads, checking sizes and CRC-32. Encryption, multi-disk archives and other
 * compression methods are reported as `ERR_HVAE_FORMAT` errors.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { formatError, inflateRawChecked, ioError } from './util.js';

/** One entry of a zip archive's central directory. */
export interface ZipEntry {
  /** Path inside the archive (`/` separated). */
  name: string;
  /** 0 = stored, 8 = deflated. */
  method: number;
  /** General-purpose flags (bit 0: encrypted). */
  flags: number;
  /** CRC-32 of the uncompressed data. */
  crc32: number;
  /** Compressed size in bytes. */
  compressedSize: number;
  /** Uncompressed size in bytes. */
  size: number;
  /** Offset of the local file header. */
  localHeaderOffset: number;
  /** True for directory entries (name ends with `/`). */
  isDirectory: boolean;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_SIG = 0x06064b50;
const EOCD64_LOC_SIG = 0x07064b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;

/** An open zip archive. Call {@link ZipReader.close} when done. */
export class ZipReader {
  private constructor(readonly file: string, private readonly fh: fs.promises.FileHandle, readonly size: number, readonly entries: ZipEntry[]) {}

  /**
   * Opens a zip file and reads its central directory. Rejects with `ERR_HVAE_FORMAT` when the file is not a zip
   * archive or its directory is corrupt, `ERR_HVAE_DATA` when missing, `ERR_HVAE_IO` otherwise.
   */
  static async open(file: string): Promise<ZipReader> {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (err) {
      throw ioError(file, err);
    }
    try {
      const size = (await fh.stat()).size;
      const entries = await readCentralDirectory(file, fh, size);
      return new ZipReader(file, fh, size, entries);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Finds an entry by exact name. */
  entry(name: string): ZipEntry | undefined {
    return this.entries.find((e) => e.name === name);
  }

  /** Byte offset of an entry's data (after its local header). */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const head = await readAt(this.file, this.fh, entry.localHeaderOffset, 30);
    if (head.length < 30 || head.readUInt32LE(0) !== LOC_SIG) {
      throw formatError(this.file, `zip entry ${entry.name}: bad local header at offset ${entry.localHeaderOffset} (corrupt archive)`);
    }
    const off = entry.localHeaderOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    if (off + entry.compressedSize > this.size) {
      throw formatError(this.file, `zip entry ${entry.name}: data (${entry.compressedSize} bytes at ${off}) runs past the end of the file (truncated archive)`);
    }
    return off;
  }

  /** Reads, decompresses and CRC-checks an entry. Rejects with `ERR_HVAE_FORMAT` naming the archive and the entry. */
  async read(entry: ZipEntry): Promise<Buffer> {
    const what = `zip entry ${entry.name}`;
    if (entry.flags & 1) throw formatError(this.file, `${what} is encrypted (not supported)`);
    if (entry.method !== 0 && entry.method !== 8) {
      throw formatError(this.file, `${what} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
    }
    const off = await this.dataOffset(entry);
    const comp = await readAt(this.file, this.fh, off, entry.compressedSize);
    if (comp.length < entry.compressedSize) throw formatError(this.file, `${what} is truncated`);
    const data = entry.method === 0 ? comp : await inflateRawChecked(comp, this.file, what);
    if (data.length !== entry.size) {
      throw formatError(this.file, `${what} decompressed to ${data.length} bytes, the directory says ${entry.size} (corrupt archive)`);
    }
    if (zlib.crc32(data) !== entry.crc32) throw formatError(this.file, `${what} fails its CRC-32 check (corrupt archive)`);
    return data;
  }

  /** Reads `len` bytes at `start` of a stored (uncompressed) entry's data, without CRC check. */
  async readStored(entry: ZipEntry, start: number, len: number): Promise<Buffer> {
    if (entry.method !== 0) throw formatError(this.file, `zip entry ${entry.name} is compressed; cannot read a range of it`);
    const off = await this.dataOffset(entry);
    return readAt(this.file, this.fh, off + start, Math.max(0, Math.min(len, entry.size - start)));
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function readAt(file: string, fh: fs.promises.FileHandle, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  try {
    while (got < len) {
      const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } catch (err) {
    throw ioError(file, err);
  }
  return buf.subarray(0, got);
}

async function readCentralDirectory(file: string, fh: fs.promises.FileHandle, size: number): Promise<ZipEntry[]> {
  const tailLen = Math.min(size, 22 + 65535);
  const tail = await readAt(file, fh, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) { eocd = i; break; }
  }
  if (eocd < 0) throw formatError(file, 'not a zip archive (no end-of-central-directory record); the file may be truncated or not a .zip/.npz');
  const disk = tail.readUInt16LE(eocd + 4);
  const cdDisk = tail.readUInt16LE(eocd + 6);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locPos = size - tailLen + eocd - 20;
    if (locPos < 0) throw formatError(file, 'ZIP64 archive without a ZIP64 locator (corrupt)');
    const loc = await readAt(file, fh, locPos, 20);
    if (loc.readUInt32LE(0) !== EOCD64_LOC_SIG) throw formatError(file, 'ZIP64 archive without a ZIP64 locator (corrupt)');
    const e64pos = Number(loc.readBigUInt64LE(8));
    const e64 = await readAt(file, fh, e64pos, 56);
    if (e64.length < 56 || e64.readUInt32LE(0) !== EOCD64_SIG) throw formatError(file, 'bad ZIP64 end-of-central-directory record (corrupt)');
    count = Number(e64.readBigUInt64LE(32));
    cdSize = Number(e64.readBigUInt64LE(40));
    cdOffset = Number(e64.readBigUInt64LE(48));
  } else if (disk !== 0 || cdDisk !== 0) {
    throw formatError(file, 'multi-disk (split) zip archives are not supported');
  }
  if (cdOffset + cdSize > size) throw formatError(file, `central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the file (truncated archive)`);
  const cd = await readAt(file, fh, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CEN_SIG) throw formatError(file, `corrupt central directory at entry ${i}`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw formatError(file, `corrupt central directory at entry ${i}`);
    const name = cd.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLen);
    // ZIP64 extended information extra field.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => { if (q + 8 > e + 4 + len) throw formatError(file, `corrupt ZIP64 field in entry ${name}`); const v = Number(cd.readBigUInt64LE(q)); q += 8; return v; };
        if (usize === 0xffffffff) usize = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      e += 4 + len;
    }
    entries.push({ name, method, flags, crc32, compressedSize, size: usize, localHeaderOffset, isDirectory: name.endsWith('/') });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Builds a zip archive in memory (stored or deflated entries); used to write `.npz` fixtures and tests. */
export function buildZip(files: { name: string; data: Uint8Array; deflate?: boolean }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const comp = f.deflate ? zlib.deflateRawSync(f.data) : Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength);
    const crc = zlib.crc32(f.data);
    const loc = Buffer.alloc(30);
    loc.writeUInt32LE(LOC_SIG, 0); loc.writeUInt16LE(20, 4); loc.writeUInt16LE(0x800, 6); loc.writeUInt16LE(f.deflate ? 8 : 0, 8);
    loc.writeUInt32LE(crc, 14); loc.writeUInt32LE(comp.length, 18); loc.writeUInt32LE(f.data.length, 22); loc.writeUInt16LE(name.length, 26);
    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(CEN_SIG, 0); cen.writeUInt16LE(20, 4); cen.writeUInt16LE(20, 6); cen.writeUInt16LE(0x800, 8); cen.writeUInt16LE(f.deflate ? 8 : 0, 10);
    cen.writeUInt32LE(crc, 16); cen.writeUInt32LE(comp.length, 20); cen.writeUInt32LE(f.data.length, 24); cen.writeUInt16LE(name.length, 28);
    cen.writeUInt32LE(offset, 42);
    locals.push(loc, name, comp);
    centrals.push(cen, name);
    offset += 30 + name.length + comp.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(EOCD_SIG, 0); eocd.writeUInt16LE(files.length, 8); eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12); eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}
