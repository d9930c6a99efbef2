/**
 * A fast path for the PNGs datasets are made of: non-interlaced greyscale, grey+alpha, RGB or RGBA with 8-bit
 * samples, and greyscale with 1, 2 or 4 bits. The zlib stream is inflated with node:zlib (synchronously when it is at
 * most 64 KiB, which takes microseconds; larger ones on the libuv thread pool, off the event loop) and the scanlines
 * are unfiltered in JS, which for small images is an order of magnitude faster than a libvips pipeline per image. Sample values are the stored ones (no gamma or ICC conversion), as PIL reads them. Anything
 * else (palette, 16-bit, interlaced, unknown critical chunks) returns `undefined` and is decoded by sharp instead.
 */
import * as zlib from 'node:zlib';
import { formatError, zlibError } from './util.js';

/** Compressed sizes up to this are inflated synchronously (tens of microseconds); larger ones on the thread pool. */
const SYNC_INFLATE_MAX = 64 * 1024;
const SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** A decoded PNG: interleaved (HWC) 8-bit samples. */
export interface RawPng {
  /** Samples, row-major, channels interleaved. */
  data: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA). */
  channels: number;
}

/** True when the bytes start with the PNG signature. */
export function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && SIG.every((v, i) => b[i] === v);
}

/**
 * Decodes a PNG with the fast path, or returns `undefined` when the PNG needs the general decoder. Rejects with
 * `ERR_HVAE_FORMAT` naming `file` for a truncated or corrupt PNG (bad chunk CRC, bad zlib data, short image data).
 */
export async function decodePngFast(b: Uint8Array, file = '<buffer>'): Promise<RawPng | undefined> {
  if (!isPng(b)) return undefined;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let p = 8;
  let width = 0, height = 0, depth = 0, colour = -1;
  const idat: Buffer[] = [];
  let ended = false;
  while (p + 12 <= buf.length) {
    const len = buf.readUInt32BE(p);
    const type = buf.toString('latin1', p + 4, p + 8);
    if (p + 12 + len > buf.length) break;
    const crc = buf.readUInt32BE(p + 8 + len);
    if (zlib.crc32(buf.subarray(p + 4, p + 8 + len)) !== crc) throw formatError(file, `cannot decode image (PNG chunk ${type} fails its CRC check: corrupt file)`);
    const data = buf.subarray(p + 8, p + 8 + len);
    if (type === 'IHDR') {
      if (len < 13) throw formatError(file, 'cannot decode image (bad PNG header)');
      width = data.readUInt32BE(0); height = data.readUInt32BE(4); depth = data[8]; colour = data[9];
      if (data[10] !== 0 || data[11] !== 0) throw formatError(file, 'cannot decode image (unknown PNG compression or filter method)');
      if (data[12] !== 0) return undefined; // interlaced
      const ok = (depth === 8 && CHANNELS[colour] !== undefined) || (colour === 0 && (depth === 1 || depth === 2 || depth === 4));
      if (!ok) return undefined;
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      ended = true;
      break;
    } else if (type.charCodeAt(0) >= 65 && type.charCodeAt(0) <= 90 && type !== 'PLTE') {
      return undefined; // unknown critical chunk
    }
    p += 12 + len;
  }
  if (!width || !height) throw formatError(file, 'cannot decode image (PNG without a header chunk)');
  if (!ended) throw formatError(file, 'cannot decode image (truncated PNG: no IEND chunk)');
  if (width * height > 1 << 28) return undefined;
  const channels = CHANNELS[colour];
  const bitsPerPixel = depth * channels;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const compressed = idat.length === 1 ? idat[0] : Buffer.concat(idat);
  const maxOutputLength = (stride + 1) * height + 1024;
  let raw: Buffer;
  if (compressed.length <= SYNC_INFLATE_MAX) {
    // Small images (dataset thumbnails): a synchronous inflate takes microseconds, far less than a thread-pool round trip.
    try { raw = zlib.inflateSync(compressed, { maxOutputLength }); } catch (err) { throw zlibError(file, err, 'PNG image'); }
  } else {
    raw = await new Promise<Buffer>((resolve, reject) => {
      zlib.inflate(compressed, { maxOutputLength }, (err, out) => (err ? reject(zlibError(file, err, 'PNG image')) : resolve(out)));
    });
  }
  if (raw.length < (stride + 1) * height) throw formatError(file, `cannot decode image (truncated PNG data: ${raw.length} of ${(stride + 1) * height} bytes)`);
  const lines = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const o = y * stride;
    const up = o - stride;
    const first = Math.min(bpp, stride);
    if (f === 0 || (f === 2 && y === 0)) {
      lines.set(raw.subarray(src, src + stride), o);
    } else if (f === 1 || (f === 4 && y === 0)) {
      // Sub (and Paeth on the first row, where it reduces to Sub).
      for (let x = 0; x < first; x++) lines[o + x] = raw[src + x];
      for (let x = bpp; x < stride; x++) lines[o + x] = (raw[src + x] + lines[o + x - bpp]) & 255;
    } else if (f === 2) {
      for (let x = 0; x < stride; x++) lines[o + x] = (raw[src + x] + lines[up + x]) & 255;
    } else if (f === 3) {
      if (y === 0) {
        for (let x = 0; x < first; x++) lines[o + x] = raw[src + x];
        for (let x = bpp; x < stride; x++) lines[o + x] = (raw[src + x] + (lines[o + x - bpp] >> 1)) & 255;
      } else {
        for (let x = 0; x < first; x++) lines[o + x] = (raw[src + x] + (lines[up + x] >> 1)) & 255;
        for (let x = bpp; x < stride; x++) lines[o + x] = (raw[src + x] + ((lines[o + x - bpp] + lines[up + x]) >> 1)) & 255;
      }
    } else if (f === 4) {
      for (let x = 0; x < first; x++) lines[o + x] = (raw[src + x] + lines[up + x]) & 255;
      for (let x = bpp; x < stride; x++) {
        const a = lines[o + x - bpp];
        const b2 = lines[up + x];
        const c = lines[up + x - bpp];
        let pa = b2 - c; if (pa < 0) pa = -pa;
        let pb = a - c; if (pb < 0) pb = -pb;
        let pc = a + b2 - 2 * c; if (pc < 0) pc = -pc;
        lines[o + x] = (raw[src + x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b2 : c)) & 255;
      }
    } else {
      throw formatError(file, `cannot decode image (corrupt PNG: unknown filter type ${f} on row ${y})`);
    }
  }
  if (depth === 8) return { data: lines, width, height, channels };
  // Low-bit greyscale: expand to 8 bits (v * 255 / (2^depth - 1)).
  const out = new Uint8Array(width * height);
  const scale = 255 / ((1 << depth) - 1);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const v = (lines[y * stride + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
      out[y * width + x] = v * scale;
    }
  }
  return { data: out, width, height, channels: 1 };
}
