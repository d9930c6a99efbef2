/**
 * CIFAR binary batches (`data_batch_1.bin` … `test_batch.bin` of `cifar-10-binary.tar.gz`): records of one label byte
 * followed by 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major), i.e. already CHW. CIFAR-100's
 * binary files have two label bytes (coarse, fine); pass `labelBytes: 2` to read the fine label.
 */
import { HVAEError } from '../errors.js';
import { ArrayDataset, concat, Dataset, RecordFileDataset } from './stream.js';
import { readTar } from './tar.js';
import { fileIsGzip, formatError, gunzipSyncChecked, isGzip, readFileChecked, statChecked } from './util.js';

/** CIFAR-10 class names, indexed by label. */
export const CIFAR10_CLASSES: readonly string[] = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** Pixel bytes of one CIFAR image (3x32x32). */
export const CIFAR_IMAGE_BYTES = 3072;

/** Options of the CIFAR readers. */
export interface CifarOptions {
  /** Label bytes per record: 1 (CIFAR-10, default) or 2 (CIFAR-100: coarse then fine; the fine label is used). */
  labelBytes?: 1 | 2;
  /** Largest valid label (default 9 for one label byte, 99 for two). */
  maxLabel?: number;
}

function opts(o: CifarOptions): { labelBytes: number; maxLabel: number; recordSize: number } {
  const labelBytes = o.labelBytes ?? 1;
  if (labelBytes !== 1 && labelBytes !== 2) throw new HVAEError('ERR_HVAE_OPTION', `labelBytes must be 1 or 2, got ${JSON.stringify(o.labelBytes)}`);
  return { labelBytes, maxLabel: o.maxLabel ?? (labelBytes === 1 ? 9 : 99), recordSize: labelBytes + CIFAR_IMAGE_BYTES };
}

/**
 * Parses a CIFAR binary batch held in memory (gzip-compressed or not). Throws only `ERR_HVAE_FORMAT` errors: a length
 * that is not a whole number of records, an empty file, or a label out of range.
 */
export function parseCifarBatch(buf: Uint8Array, file = '<buffer>', options: CifarOptions = {}): { images: Uint8Array; labels: Int32Array } {
  if (isGzip(buf)) buf = gunzipSyncChecked(buf, file);
  const { labelBytes, maxLabel, recordSize } = opts(options);
  if (buf.length === 0) throw formatError(file, 'empty CIFAR batch file');
  if (buf.length % recordSize !== 0) {
    throw formatError(file, `not a CIFAR binary batch: ${buf.length} bytes is not a whole number of ${recordSize}-byte records (${Math.floor(buf.length / recordSize)} records and ${buf.length % recordSize} extra bytes; truncated?)`);
  }
  const n = buf.length / recordSize;
  const images = new Uint8Array(n * CIFAR_IMAGE_BYTES);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = i * recordSize;
    const label = buf[r + labelBytes - 1];
    if (label > maxLabel) throw formatError(file, `record ${i} has label ${label}, but labels must be 0..${maxLabel} (a CIFAR-100 file? pass labelBytes: 2)`);
    labels[i] = label;
    images.set(buf.subarray(r + labelBytes, r + recordSize), i * CIFAR_IMAGE_BYTES);
  }
  return { images, labels };
}

/**
 * Opens CIFAR binary batch files (uncompressed: read lazily with positional reads; `.gz`: in memory) as one dataset
 * in the order given. Rejects with `ERR_HVAE_FORMAT` for a file that is not a whole number of records.
 */
export async function openCifarBatches(files: readonly string[], options: CifarOptions & { name?: string; classNames?: readonly string[] } = {}): Promise<Dataset> {
  if (!files.length) throw new HVAEError('ERR_HVAE_OPTION', 'openCifarBatches needs at least one file');
  const { labelBytes, maxLabel, recordSize } = opts(options);
  const classNames = options.classNames ?? (labelBytes === 1 ? CIFAR10_CLASSES : undefined);
  const parts: Dataset[] = [];
  for (const file of files) {
    if (await fileIsGzip(file)) {
      const { images, labels } = parseCifarBatch(await readFileChecked(file), file, options);
      parts.push(new ArrayDataset({ name: file, images, shape: [3, 32, 32], labels, classNames }));
      continue;
    }
    const st = await statChecked(file);
    if (st.size === 0) throw formatError(file, 'empty CIFAR batch file');
    if (st.size % recordSize !== 0) {
      throw formatError(file, `not a CIFAR binary batch: ${st.size} bytes is not a whole number of ${recordSize}-byte records (truncated?)`);
    }
    parts.push(new RecordFileDataset({
      name: file, file, length: st.size / recordSize, shape: [3, 32, 32], dataOffset: 0, recordSize,
      imageOffset: labelBytes, labelOffset: labelBytes - 1, maxLabel, classNames,
    }));
  }
  return parts.length === 1 ? renamed(parts[0], options.name) : concat(parts, options.name ?? files.join(' + '));
}

function renamed(d: Dataset, name?: string): Dataset {
  if (!name) return d;
  return { name, length: d.length, shape: d.shape, hasLabels: d.hasLabels, classNames: d.classNames, read: (i) => d.read(i) };
}

/** Options of {@link openCifarArchive}. */
export interface CifarArchiveOptions extends CifarOptions {
  /** `'train'` (data_batch_1..5, default) or `'test'` (test_batch). */
  split?: 'train' | 'test';
  /** Dataset name used in messages. */
  name?: string;
}

/**
 * Reads the batches of a split straight out of `cifar-10-binary.tar.gz` (the official archive) into memory without
 * extracting it. Rejects with `ERR_HVAE_DATA` when the archive lacks the batch files.
 */
export async function openCifarArchive(file: string, options: CifarArchiveOptions = {}): Promise<Dataset> {
  const split = options.split ?? 'train';
  const want = split === 'train' ? ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'] : ['test_batch.bin'];
  const found = new Map<string, Buffer>();
  const base = (n: string): string => n.slice(n.lastIndexOf('/') + 1);
  for await (const e of readTar(file, { filter: (name) => want.includes(base(name)) })) {
    if (e.data) found.set(base(e.name), e.data);
  }
  const missing = want.filter((w) => !found.has(w));
  if (missing.length) throw new HVAEError('ERR_HVAE_DATA', `${file}: the archive lacks ${missing.join(', ')}; is it cifar-10-binary.tar.gz?`);
  const { labelBytes } = opts(options);
  const parsed = want.map((w) => parseCifarBatch(found.get(w)!, `${file}:${w}`, options));
  const n = parsed.reduce((s, p) => s + p.labels.length, 0);
  const images = new Uint8Array(n * CIFAR_IMAGE_BYTES);
  const labels = new Int32Array(n);
  let o = 0;
  for (const p of parsed) { images.set(p.images, o * CIFAR_IMAGE_BYTES); labels.set(p.labels, o); o += p.labels.length; }
  return new ArrayDataset({ name: options.name ?? `${file} (${split})`, images, shape: [3, 32, 32], labels, classNames: labelBytes === 1 ? CIFAR10_CLASSES : undefined });
}
