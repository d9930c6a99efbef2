/**
 * Encoded images (PNG, JPEG, WebP) from a folder, a tar/tar.gz archive or a zip archive, decoded with sharp (libvips
 * on the libuv thread pool, i.e. off the event loop) with bounded concurrency, into one uint8 NCHW
 * {@link ArrayDataset}. Images are ordered by natural sort of their paths (`2.png` before `10.png`); labels come
 * from class subfolders when present.
 *
 * Large collections are decoded once into memory (28x28 grey: 784 bytes per image); to stream something bigger than
 * memory, convert it once with `writeRaw` (raw.ts) and open the raw file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { HVAEError } from '../errors.js';
import { decodePngFast } from './png.js';
import { ArrayDataset, ImageShape } from './stream.js';
import { readTar } from './tar.js';
import { fileError, formatError, ioError, Limiter, naturalCompare, statChecked } from './util.js';
import { ZipReader } from './zip.js';

/** sharp's resampling kernels. `'linear'` is bilinear, `'nearest'` nearest-neighbour. */
/** The resampling kernels `size` can use. */
export const RESIZE_KERNELS = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'] as const;
export type ResizeKernel = (typeof RESIZE_KERNELS)[number];

/** File name extensions decoded by default. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp'];

/** How images are decoded. */
export interface DecodeOptions {
  /**
   * Output channels: 1 (grey; colour images are converted with PIL's `'L'` weights 0.299/0.587/0.114), 3 (RGB; grey
   * images are replicated), or `'auto'` (default: as stored, alpha dropped; all images must then agree).
   */
  channels?: 1 | 3 | 'auto';
  /** Resize every image to `[height, width]` with `kernel` (default: keep the size; all images must then agree). */
  size?: [number, number];
  /**
   * Resampling kernel for `size` (default `'linear'`). sharp/libvips kernels differ slightly from PIL's filtered
   * resampling, so resized pixels can differ from the reference's by a few levels.
   */
  kernel?: ResizeKernel;
  /**
   * `'auto'` (default): 8-bit (and 1/2/4-bit grey) non-interlaced PNGs without resizing use a fast built-in decoder
   * (zlib on the thread pool + JS unfiltering; stored sample values, as PIL reads them); everything else uses sharp.
   * `'sharp'`: always sharp (which applies an embedded ICC profile, if any).
   */
  decoder?: 'auto' | 'sharp';
}

/** A decoded image: uint8 CHW pixels. */
export interface DecodedImage {
  /** Pixels, CHW. */
  data: Uint8Array;
  /** `[c, h, w]`. */
  shape: ImageShape;
}

/** The largest resize target: sides up to 65,535 pixels and 2^28 pixels in all (768 MiB for one RGB image). */
const MAX_RESIZE_PIXELS = 2 ** 28;

/** Refuses decode options that would otherwise be ignored or blamed on the image file. Throws `ERR_HVAE_OPTION`. */
function checkDecodeOptions(o: DecodeOptions): void {
  if (o === null || typeof o !== 'object') throw new HVAEError('ERR_HVAE_OPTION', `decode options must be an object, got ${String(o)}`);
  if (o.size !== undefined && !(Array.isArray(o.size) && o.size.length === 2 && o.size.every((v) => Number.isInteger(v) && v > 0 && v <= 65535) &&
      o.size[0] * o.size[1] <= MAX_RESIZE_PIXELS)) {
    throw new HVAEError('ERR_HVAE_OPTION', `size must be [height, width] of positive integers (at most 65535 each, 2^28 pixels in all), got ${JSON.stringify(o.size)}`);
  }
  if (o.channels !== undefined && o.channels !== 'auto' && o.channels !== 1 && o.channels !== 3) {
    throw new HVAEError('ERR_HVAE_OPTION', `channels must be 1, 3 or 'auto', got ${JSON.stringify(o.channels)}`);
  }
  if (o.kernel !== undefined && !(RESIZE_KERNELS as readonly unknown[]).includes(o.kernel)) {
    throw new HVAEError('ERR_HVAE_OPTION', `kernel must be one of ${RESIZE_KERNELS.join(', ')}, got ${JSON.stringify(o.kernel)}`);
  }
  if (o.decoder !== undefined && o.decoder !== 'auto' && o.decoder !== 'sharp') {
    throw new HVAEError('ERR_HVAE_OPTION', `decoder must be 'auto' or 'sharp', got ${JSON.stringify(o.decoder)}`);
  }
}

/**
 * Decodes one encoded image (PNG/JPEG/WebP/…) into uint8 CHW pixels. Rejects with `ERR_HVAE_FORMAT` naming `file`
 * when sharp cannot decode it (corrupt, truncated, unsupported format), `ERR_HVAE_OPTION` for invalid options.
 */
export async function decodeImage(input: Uint8Array, options: DecodeOptions = {}, file = '<buffer>'): Promise<DecodedImage> {
  checkDecodeOptions(options);
  let src: Uint8Array;
  let w: number, h: number, sc: number;
  let grey: boolean;
  const fast = !options.size && options.decoder !== 'sharp' ? await decodePngFast(input, file) : undefined;
  if (fast) {
    ({ data: src, width: w, height: h, channels: sc } = fast);
    grey = sc <= 2;
  } else {
    try {
      let img = sharp(input, { failOn: 'error' });
      // sharp outputs grey images as 3 identical sRGB channels unless asked for b-w: find out whether the source is grey.
      const pngType = pngColourType(input);
      if (pngType !== undefined) grey = pngType === 0 || pngType === 4;
      else {
        const meta = await img.metadata();
        grey = (meta.channels ?? 3) - (meta.hasAlpha ? 1 : 0) === 1;
      }
      if (options.size) img = img.resize(options.size[1], options.size[0], { kernel: options.kernel ?? 'linear', fit: 'fill', fastShrinkOnLoad: false });
      if (grey) img = img.toColourspace('b-w');
      const raw = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      src = raw.data;
      ({ width: w, height: h, channels: sc } = raw.info);
    } catch (err) {
      throw formatError(file, `cannot decode image (${(err as Error)?.message ?? err})`, err);
    }
  }
  const colour = sc >= 3 && !grey ? 3 : 1;
  const target = options.channels === undefined || options.channels === 'auto' ? colour : options.channels;
  const hw = h * w;
  const out = new Uint8Array(target * hw);
  if (target === 1 && colour === 1) {
    if (sc === 1) out.set(src.subarray(0, hw));
    else for (let p = 0; p < hw; p++) out[p] = src[p * sc];
  } else if (target === 1) {
    for (let p = 0; p < hw; p++) {
      const s = p * sc;
      out[p] = (src[s] * 19595 + src[s + 1] * 38470 + src[s + 2] * 7471 + 0x8000) >>> 16;
    }
  } else if (colour === 1) {
    for (let p = 0; p < hw; p++) { const v = src[p * sc]; out[p] = v; out[hw + p] = v; out[2 * hw + p] = v; }
  } else {
    for (let p = 0; p < hw; p++) {
      const s = p * sc;
      out[p] = src[s]; out[hw + p] = src[s + 1]; out[2 * hw + p] = src[s + 2];
    }
  }
  return { data: out, shape: [target, h, w] };
}

const PNG_SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** The colour type of a PNG's IHDR chunk (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), or undefined if not a PNG. */
function pngColourType(b: Uint8Array): number | undefined {
  if (b.length < 26 || !PNG_SIG.every((v, i) => b[i] === v) || b[12] !== 0x49 || b[13] !== 0x48 || b[14] !== 0x44 || b[15] !== 0x52) return undefined;
  return b[25];
}

/** How labels are assigned to images. */
export type LabelMode = 'auto' | 'folder' | 'none' | ((relativePath: string) => string | undefined);

/** Options of the image-collection readers. */
export interface ImageCollectionOptions extends DecodeOptions {
  /**
   * Labels: `'folder'` (the image's folder below the common root of all images is its class), `'none'`, a function of
   * the image's path inside the collection returning a class name, or `'auto'` (default: `'folder'` when every image
   * lies in a class folder, else none).
   */
  label?: LabelMode;
  /** Class names in label order (default: the distinct names found, naturally sorted). */
  classNames?: readonly string[];
  /** Skip files that cannot be read or decoded, and report them in `skipped` (default false: the first one is an error). */
  skipUnreadable?: boolean;
  /** Called for every skipped file. */
  onSkip?: (file: string, error: HVAEError) => void;
  /** Images decoded at the same time (default: 4 per CPU, at least 8; sharp runs them on the libuv thread pool). */
  concurrency?: number;
  /** File name extensions to decode (default {@link IMAGE_EXTENSIONS}); other files are ignored. */
  extensions?: readonly string[];
  /** Dataset name used in messages. */
  name?: string;
}

/** A decoded image collection. */
export class ImageDataset extends ArrayDataset {
  /** Files skipped because `skipUnreadable` was set, with the reason. */
  readonly skipped: readonly { file: string; reason: string }[];
  /** Where the images came from (folder or archive). */
  readonly source: string;
  constructor(opts: ConstructorParameters<typeof ArrayDataset>[0] & { skipped: { file: string; reason: string }[]; source: string }) {
    super(opts);
    this.skipped = opts.skipped;
    this.source = opts.source;
  }
}

interface Decoded { rel: string; img?: DecodedImage; error?: HVAEError }

class Collector {
  readonly results: Decoded[] = [];
  private readonly limiter: Limiter;
  private readonly inflight = new Set<Promise<void>>();
  private fatal: HVAEError | undefined;
  constructor(private readonly source: string, private readonly o: ImageCollectionOptions, private readonly sep = '/') {
    const c = o.concurrency ?? Math.max(8, 4 * os.availableParallelism());
    if (!Number.isInteger(c) || c < 1) throw new HVAEError('ERR_HVAE_OPTION', `concurrency must be a positive integer, got ${JSON.stringify(o.concurrency)}`);
    this.limiter = new Limiter(c);
    checkDecodeOptions(o);
    if (o.label !== undefined && typeof o.label !== 'function' && !['auto', 'folder', 'none'].includes(o.label)) {
      throw new HVAEError('ERR_HVAE_OPTION', `label must be 'auto', 'folder', 'none' or a function, got ${JSON.stringify(o.label)}`);
    }
    if (o.extensions !== undefined && !(Array.isArray(o.extensions) && o.extensions.every((e) => typeof e === 'string'))) {
      throw new HVAEError('ERR_HVAE_OPTION', `extensions must be an array of strings such as ['.png'], got ${JSON.stringify(o.extensions)}`);
    }
  }
  /** Schedules the decoding of one image; waits while `concurrency` decodes are running (backpressure). */
  async add(rel: string, load: () => Promise<Uint8Array>): Promise<void> {
    if (this.fatal) throw this.fatal;
    await this.limiter.acquire();
    if (this.fatal) { this.limiter.release(); throw this.fatal; }
    const p = (async () => {
      const where = `${this.source}${this.sep}${rel}`;
      try {
        const buf = await load();
        this.results.push({ rel, img: await decodeImage(buf, this.o, where) });
      } catch (err) {
        const e = err instanceof HVAEError ? err : formatError(where, `cannot read image (${(err as Error)?.message ?? err})`, err);
        if (this.o.skipUnreadable) {
          this.results.push({ rel, error: e });
        } else if (!this.fatal) this.fatal = e;
      } finally {
        this.limiter.release();
      }
    })();
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }
  async finish(): Promise<ImageDataset> {
    await Promise.all([...this.inflight]);
    if (this.fatal) throw this.fatal;
    return assemble(this.source, this.results, this.o);
  }
}

function hasExt(name: string, exts: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return exts.some((e) => lower.endsWith(e.toLowerCase()));
}

function assemble(source: string, results: Decoded[], o: ImageCollectionOptions): ImageDataset {
  results.sort((a, b) => naturalCompare(a.rel, b.rel));
  const skipped: { file: string; reason: string }[] = [];
  const ok: { rel: string; img: DecodedImage }[] = [];
  for (const r of results) {
    if (r.error) {
      skipped.push({ file: r.rel, reason: r.error.message });
      o.onSkip?.(r.rel, r.error);
    } else ok.push({ rel: r.rel, img: r.img! });
  }
  const exts = (o.extensions ?? IMAGE_EXTENSIONS).join(' ');
  if (ok.length === 0) {
    throw new HVAEError('ERR_HVAE_DATA', skipped.length
      ? `${source}: all ${skipped.length} image files are unreadable (empty dataset); first: ${skipped[0].reason}`
      : `${source}: no images found (empty dataset; looked for files ending in ${exts})`);
  }
  const ref = ok[0];
  const shape = ref.img.shape;
  for (const r of ok) {
    const s = r.img.shape;
    if (s[0] !== shape[0] || s[1] !== shape[1] || s[2] !== shape[2]) {
      const hint = s[0] !== shape[0] ? "pass channels: 1 or 3 to convert every image" : 'pass size: [h, w] to resize every image';
      throw new HVAEError('ERR_HVAE_SHAPE', `${source}: images have different shapes: ${r.rel} is ${s.join('x')} (c x h x w) but ${ref.rel} is ${shape.join('x')}; ${hint}`);
    }
  }
  // Labels.
  const rels = ok.map((r) => r.rel);
  let labelOf: ((rel: string) => string | undefined) | undefined;
  const mode = o.label ?? 'auto';
  if (typeof mode === 'function') labelOf = mode;
  else if (mode !== 'none') {
    const prefix = commonDir(rels);
    const dirOf = (rel: string): string => path.posix.dirname(rel.slice(prefix.length)).replace(/^\.$/, '');
    const allInFolders = rels.every((r) => dirOf(r) !== '');
    if (mode === 'folder' && !allInFolders) {
      const bad = rels.find((r) => dirOf(r) === '')!;
      throw new HVAEError('ERR_HVAE_DATA', `${source}: label: 'folder' needs every image inside a class folder, but ${bad} is not (or all images are in one folder)`);
    }
    if (allInFolders) labelOf = dirOf;
  }
  let labels: Int32Array | undefined;
  let classNames: readonly string[] | undefined;
  if (labelOf) {
    const names = rels.map((r) => labelOf!(r));
    const missing = names.findIndex((n) => n === undefined);
    if (missing >= 0 && names.some((n) => n !== undefined)) {
      throw new HVAEError('ERR_HVAE_DATA', `${source}: no label for ${rels[missing]} although other images have labels`);
    }
    if (missing < 0) {
      classNames = o.classNames ?? [...new Set(names as string[])].sort(naturalCompare);
      const index = new Map(classNames.map((c, i) => [c, i]));
      labels = new Int32Array(names.length);
      names.forEach((n, i) => {
        const v = index.get(n!);
        if (v === undefined) throw new HVAEError('ERR_HVAE_DATA', `${source}: ${rels[i]} has class '${n}', which is not one of the given classNames (${classNames!.join(', ')})`);
        labels![i] = v;
      });
    }
  }
  const per = shape[0] * shape[1] * shape[2];
  const images = new Uint8Array(ok.length * per);
  ok.forEach((r, i) => images.set(r.img.data, i * per));
  return new ImageDataset({ name: o.name ?? source, images, shape, labels, names: rels, classNames, skipped, source });
}

function commonDir(rels: string[]): string {
  let prefix = rels[0].slice(0, rels[0].lastIndexOf('/') + 1);
  for (const r of rels) {
    while (prefix && !r.startsWith(prefix)) prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('/') + 1);
    if (!prefix) break;
  }
  return prefix;
}

async function walk(dir: string, rel: string, out: string[], exts: readonly string[]): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(path.join(dir, rel), { withFileTypes: true });
  } catch (err) {
    throw ioError(path.join(dir, rel), err, 'list');
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) await walk(dir, r, out, exts);
    else if ((e.isFile() || e.isSymbolicLink()) && hasExt(e.name, exts)) out.push(r);
  }
}

/**
 * Decodes every image below a folder (recursively; hidden files skipped). With class subfolders
 * (`root/<class>/<image>`) images get labels. Rejects with `ERR_HVAE_FORMAT` for an undecodable file (unless
 * `skipUnreadable`), `ERR_HVAE_SHAPE` for images of different sizes, `ERR_HVAE_DATA` for a missing folder or no images.
 */
export async function openImageFolder(dir: string, options: ImageCollectionOptions = {}): Promise<ImageDataset> {
  const st = await statChecked(dir);
  if (!st.isDirectory()) throw fileError('ERR_HVAE_IO', dir, 'is not a directory');
  const c = new Collector(dir, options); // checks the options before the walk
  const files: string[] = [];
  await walk(dir, '', files, options.extensions ?? IMAGE_EXTENSIONS);
  files.sort(naturalCompare);
  for (const rel of files) {
    // Callback fs.readFile: markedly faster than fs.promises.readFile for many small files.
    await c.add(rel, () => new Promise<Buffer>((resolve, reject) => {
      fs.readFile(path.join(dir, rel), (err, data) => (err ? reject(ioError(path.join(dir, rel), err)) : resolve(data)));
    }));
  }
  return c.finish();
}

/**
 * Decodes every image of a tar or tar.gz archive, streaming through the archive (it is never extracted or held whole
 * in memory). Errors as {@link openImageFolder}, plus `ERR_HVAE_FORMAT` for a corrupt or truncated archive.
 */
export async function openImageTar(file: string, options: ImageCollectionOptions = {}): Promise<ImageDataset> {
  const exts = options.extensions ?? IMAGE_EXTENSIONS;
  const c = new Collector(file, options, ':');
  for await (const e of readTar(file, { filter: (name) => hasExt(name, exts) && !path.posix.basename(name).startsWith('.') })) {
    if (e.data) {
      const data = e.data;
      await c.add(e.name, async () => data);
    }
  }
  return c.finish();
}

/** Decodes every image of a zip archive (e.g. Omniglot's `images_background.zip`). Errors as {@link openImageTar}. */
export async function openImageZip(file: string, options: ImageCollectionOptions = {}): Promise<ImageDataset> {
  const exts = options.extensions ?? IMAGE_EXTENSIONS;
  const c = new Collector(file, options, ':');
  const zip = await ZipReader.open(file);
  try {
    for (const e of zip.entries) {
      if (e.isDirectory || !hasExt(e.name, exts) || path.posix.basename(e.name).startsWith('.') || e.name.startsWith('__MACOSX/')) continue;
      await c.add(e.name, () => zip.read(e));
    }
    return await c.finish();
  } finally {
    await zip.close();
  }
}

/** Opens a folder, a `.tar`/`.tar.gz`/`.tgz` or a `.zip` of images, by what `target` is. */
export async function openImages(target: string, options: ImageCollectionOptions = {}): Promise<ImageDataset> {
  const st = await statChecked(target);
  if (st.isDirectory()) return openImageFolder(target, options);
  const lower = target.toLowerCase();
  if (lower.endsWith('.zip')) return openImageZip(target, options);
  if (/\.(tar|tar\.gz|tgz)$/.test(lower)) return openImageTar(target, options);
  throw fileError('ERR_HVAE_OPTION', target, 'is neither a folder nor a .tar, .tar.gz, .tgz or .zip archive of images');
}
