/**
 * NumPy `.npz` archives: a zip of `.npy` files (`np.savez` stores them, `np.savez_compressed` deflates them). The
 * zip directory is read with {@link ZipReader}; stored image arrays are read lazily with positional reads from inside
 * the archive, deflated ones are inflated into memory.
 */
import { HVAEError } from '../errors.js';
import { Dataset, RecordFileDataset } from './stream.js';
import { imageLayout, npyImageDataset, npyLabels, NpyArray, NpyLayout, parseNpy, parseNpyHeader } from './npy.js';
import { formatError } from './util.js';
import { ZipEntry, ZipReader } from './zip.js';

/** Reads every array of an `.npz` file, keyed by name without `.npy`. */
export async function readNpz(file: string): Promise<Record<string, NpyArray>> {
  const zip = await ZipReader.open(file);
  try {
    const out: Record<string, NpyArray> = {};
    for (const e of zip.entries) {
      if (e.isDirectory) continue;
      const key = e.name.replace(/\.npy$/, '');
      out[key] = parseNpy(await zip.read(e), `${file}:${e.name}`);
    }
    return out;
  } finally {
    await zip.close();
  }
}

/** Options of {@link openNpz}. */
export interface OpenNpzOptions {
  /**
   * Name of the image array. Default: the first of `x`, `images`, `x_train`, `X`, `arr_0`, `x_test` present, else
   * the only array with 3 or 4 dimensions.
   */
  images?: string;
  /** Name of the label array. Default: the first of `y`, `labels`, `y_train`, `arr_1`, `y_test` present (none: no labels). */
  labels?: string | false;
  /** Layout of 4-D arrays (default `'auto'`, see {@link NpyLayout}). */
  layout?: NpyLayout;
  /** Dataset name used in messages (default `file:array`). */
  name?: string;
  /** Class names indexed by label. */
  classNames?: readonly string[];
}

const IMAGE_KEYS = ['x', 'images', 'x_train', 'X', 'arr_0', 'x_test'];
const LABEL_KEYS = ['y', 'labels', 'y_train', 'arr_1', 'y_test'];

/**
 * Opens a uint8 image array of an `.npz` archive (plus an optional label array) as a {@link Dataset}. Rejects with
 * `ERR_HVAE_FORMAT` (not a zip, corrupt entry, wrong dtype, counts disagree), `ERR_HVAE_DATA` (missing file or array)
 * or `ERR_HVAE_IO`.
 */
export async function openNpz(file: string, options: OpenNpzOptions = {}): Promise<Dataset> {
  const zip = await ZipReader.open(file);
  try {
    const byKey = new Map<string, ZipEntry>();
    for (const e of zip.entries) if (!e.isDirectory) byKey.set(e.name.replace(/\.npy$/, ''), e);
    const keys = [...byKey.keys()];
    let imgKey = options.images ?? IMAGE_KEYS.find((k) => byKey.has(k));
    if (!imgKey && !options.images) {
      const cands: string[] = [];
      for (const k of keys) {
        const e = byKey.get(k)!;
        const head = await zip.read(e).then((b) => parseNpyHeader(b, `${file}:${e.name}`)).catch(() => undefined);
        if (head && (head.shape.length === 3 || head.shape.length === 4)) cands.push(k);
      }
      if (cands.length === 1) imgKey = cands[0];
    }
    if (!imgKey || !byKey.has(imgKey)) {
      throw new HVAEError('ERR_HVAE_DATA', `${file}: no image array ${options.images ? `'${options.images}'` : `(looked for ${IMAGE_KEYS.join(', ')})`}; the archive holds: ${keys.join(', ') || 'nothing'}. Pass images: '<name>'`);
    }
    let labKey: string | undefined;
    if (options.labels !== false) {
      labKey = options.labels ?? LABEL_KEYS.find((k) => byKey.has(k) && k !== imgKey);
      if (options.labels && !byKey.has(options.labels)) {
        throw new HVAEError('ERR_HVAE_DATA', `${file}: no label array '${options.labels}'; the archive holds: ${keys.join(', ')}`);
      }
    }
    const labelsName = labKey ? `${file}:${byKey.get(labKey)!.name}` : undefined;
    const labels = labKey ? npyLabels(parseNpy(await zip.read(byKey.get(labKey)!), labelsName), labelsName!) : undefined;
    const entry = byKey.get(imgKey)!;
    const where = `${file}:${entry.name}`;
    const name = options.name ?? where;
    if (entry.method === 0 && !(entry.flags & 1)) {
      // Stored: parse the header in place and read records straight from the archive.
      const dataOff = await zip.dataOffset(entry);
      const head = await zip.readStored(entry, 0, Math.min(entry.size, 65536 + 12));
      const h = parseNpyHeader(head, where);
      if (h.fortranOrder) throw formatError(where, 'Fortran-order arrays are not supported; save with np.ascontiguousarray(x)');
      const { shape, layout } = imageLayout(h.shape, h.descr, where, options.layout);
      const n = h.shape[0];
      const need = h.dataOffset + n * shape[0] * shape[1] * shape[2];
      if (entry.size !== need) throw formatError(where, `array shape (${h.shape.join(', ')}) needs ${need} bytes, the entry has ${entry.size}`);
      if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${where}: the array holds 0 images (empty dataset)`);
      if (labels && labels.length !== n) throw formatError(where, `image and label counts disagree: ${n} images, ${labels.length} labels in ${labelsName}`);
      return new RecordFileDataset({ name, file, length: n, shape, dataOffset: dataOff + h.dataOffset, layout, labels, classNames: options.classNames });
    }
    const arr = parseNpy(await zip.read(entry), where);
    return npyImageDataset(arr, where, { name, labels, labelsFile: labelsName, layout: options.layout, classNames: options.classNames });
  } finally {
    await zip.close();
  }
}
