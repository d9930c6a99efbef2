/**
 * Image output: grids of image batches written as PNG (via sharp), for samples, reconstructions and the paper's
 * latent reconstructions.
 */
import * as fs from 'node:fs';
import { mkdirp } from './safetensors.js';
import * as path from 'node:path';
import { HVAEError } from './errors.js';

/** Options of {@link writeImageGrid}. */
export interface GridOptions {
  /** Images per row. Default 8. */
  columns?: number;
  /** Pixels between images. Default 2. */
  padding?: number;
  /** Background grey level 0..255. Default 255 (white). */
  background?: number;
  /** Scale each image up by this integer factor (nearest). Default 2. */
  scale?: number;
}

/** Lays out a batch (values in [0, 1] for float, 0..255 for uint8; NCHW, 1 or 3 channels) as one RGB/grey image. */
export function imageGrid(
  batch: { data: Float32Array | Uint8Array; shape: readonly number[] },
  options: GridOptions = {},
): { data: Uint8Array; width: number; height: number; channels: number } {
  const [n, c, h, w] = batch.shape;
  if (c !== 1 && c !== 3) throw new HVAEError('ERR_HVAE_SHAPE', `image grids need 1 or 3 channels, got ${c}`);
  const cols = Math.max(1, Math.min(options.columns ?? 8, n));
  const rows = Math.ceil(n / cols);
  const pad = options.padding ?? 2;
  const s = options.scale ?? 2;
  const W = cols * w * s + (cols + 1) * pad;
  const H = rows * h * s + (rows + 1) * pad;
  const out = new Uint8Array(W * H * c).fill(options.background ?? 255);
  const isFloat = batch.data instanceof Float32Array;
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / cols);
    const col = i % cols;
    const y0 = pad + r * (h * s + pad);
    const x0 = pad + col * (w * s + pad);
    for (let y = 0; y < h * s; y++) {
      for (let x = 0; x < w * s; x++) {
        for (let ch = 0; ch < c; ch++) {
          const v = batch.data[((i * c + ch) * h + Math.floor(y / s)) * w + Math.floor(x / s)];
          const u8 = isFloat ? Math.max(0, Math.min(255, Math.round(v * 255))) : v;
          out[((y0 + y) * W + (x0 + x)) * c + ch] = u8;
        }
      }
    }
  }
  return { data: out, width: W, height: H, channels: c };
}

/** Writes a batch as a PNG grid (parent directories are created). */
export async function writeImageGrid(
  file: string,
  batch: { data: Float32Array | Uint8Array; shape: readonly number[] },
  options: GridOptions = {},
): Promise<void> {
  const g = imageGrid(batch, options);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sharp = require('sharp') as typeof import('sharp');
  mkdirp(path.dirname(path.resolve(file)));
  const tmp = `${file}.${process.pid}.tmp`;
  await sharp(Buffer.from(g.data.buffer, g.data.byteOffset, g.data.byteLength), { raw: { width: g.width, height: g.height, channels: g.channels as 1 | 3 } })
    .png()
    .toFile(tmp);
  fs.renameSync(tmp, file);
}
