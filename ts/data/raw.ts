/**
 * Raw uint8 arrays described by a small JSON file — the simplest way to bring your own data, and the format to
 * convert anything into for streaming from disk:
 *
 * ```json
 * { "shape": [n, c, h, w], "dtype": "uint8", "file": "images.u8",
 *   "labels": { "file": "labels.i32", "dtype": "int32" }, "classNames": ["a", "b"] }
 * ```
 *
 * `file` (and `labels.file`) are relative to the JSON file. Optional: `offset` (bytes to skip), `layout`
 * (`"NCHW"` default or `"NHWC"`), `name`. Label dtypes: `uint8` or little-endian `int32`. The image file is read
 * lazily with positional reads; labels are loaded into memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HVAEError } from '../errors.js';
import { mkdirp } from '../safetensors.js';
import { batches, Dataset, RecordFileDataset } from './stream.js';
import { formatError, ioError, readFileChecked, resolveFrom, statChecked } from './util.js';

/** The JSON description of a raw dataset. */
export interface RawDescription {
  /** `[n, c, h, w]`. */
  shape: [number, number, number, number];
  /** Always `'uint8'`. */
  dtype: 'uint8';
  /** The image file, relative to the JSON file (or absolute). */
  file: string;
  /** Bytes to skip at the start of the image file (default 0). */
  offset?: number;
  /** Stored pixel order (default `'NCHW'`). */
  layout?: 'NCHW' | 'NHWC';
  /** Optional labels: a file of n uint8 or little-endian int32 values. */
  labels?: { file: string; dtype: 'uint8' | 'int32'; offset?: number };
  /** Class names indexed by label. */
  classNames?: string[];
  /** Dataset name. */
  name?: string;
}

function bad(file: string, problem: string): HVAEError {
  return formatError(file, `invalid raw dataset description: ${problem}`);
}

/** Validates a parsed description. Throws `ERR_HVAE_FORMAT` naming `file`. */
export function validateRawDescription(d: unknown, file = '<description>'): RawDescription {
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw bad(file, 'expected a JSON object');
  const o = d as Record<string, unknown>;
  const s = o.shape;
  if (!Array.isArray(s) || s.length !== 4 || !s.every((v) => Number.isInteger(v) && v >= 0) || !s.slice(1).every((v) => v > 0)) {
    throw bad(file, `"shape" must be [n, c, h, w] of integers (c, h, w positive), got ${JSON.stringify(s)}`);
  }
  if (o.dtype !== 'uint8') throw bad(file, `"dtype" must be "uint8", got ${JSON.stringify(o.dtype)}`);
  if (typeof o.file !== 'string' || !o.file) throw bad(file, '"file" must name the image file');
  if (o.offset !== undefined && !(Number.isInteger(o.offset) && (o.offset as number) >= 0)) throw bad(file, '"offset" must be a non-negative integer');
  if (o.layout !== undefined && o.layout !== 'NCHW' && o.layout !== 'NHWC') throw bad(file, `"layout" must be "NCHW" or "NHWC", got ${JSON.stringify(o.layout)}`);
  if (o.labels !== undefined) {
    const l = o.labels as Record<string, unknown>;
    if (!l || typeof l !== 'object' || typeof l.file !== 'string' || (l.dtype !== 'uint8' && l.dtype !== 'int32')) {
      throw bad(file, '"labels" must be { "file": "...", "dtype": "uint8" | "int32" }');
    }
    if (l.offset !== undefined && !(Number.isInteger(l.offset) && (l.offset as number) >= 0)) throw bad(file, '"labels.offset" must be a non-negative integer');
  }
  if (o.classNames !== undefined && !(Array.isArray(o.classNames) && o.classNames.every((c) => typeof c === 'string'))) {
    throw bad(file, '"classNames" must be an array of strings');
  }
  return o as unknown as RawDescription;
}

/**
 * Opens a raw uint8 dataset from its JSON description (or from a description object plus the directory its paths
 * are relative to). Rejects with `ERR_HVAE_FORMAT` (bad description, file size does not match the shape, counts
 * disagree), `ERR_HVAE_DATA` (missing files, empty dataset) or `ERR_HVAE_IO`.
 */
export async function openRaw(description: string | RawDescription, baseDir = process.cwd()): Promise<Dataset> {
  let desc: RawDescription;
  let where: string;
  if (typeof description === 'string') {
    where = description;
    const text = (await readFileChecked(description)).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw formatError(description, `not valid JSON (${(err as Error).message})`, err);
    }
    desc = validateRawDescription(parsed, description);
    baseDir = path.dirname(path.resolve(description));
  } else {
    where = '<raw description>';
    desc = validateRawDescription(description, where);
  }
  const [n, c, h, w] = desc.shape;
  const imagesFile = resolveFrom(baseDir, desc.file);
  const offset = desc.offset ?? 0;
  const need = offset + n * c * h * w;
  const st = await statChecked(imagesFile);
  if (st.size !== need) {
    throw formatError(imagesFile, `${st.size < need ? 'truncated: ' : ''}the file has ${st.size} bytes but ${where} describes ${n}x${c}x${h}x${w} uint8${offset ? ` after ${offset} bytes` : ''} = ${need} bytes`);
  }
  if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${where}: the dataset holds 0 images (empty dataset)`);
  let labels: Int32Array | undefined;
  if (desc.labels) {
    const lf = resolveFrom(baseDir, desc.labels.file);
    const buf = await readFileChecked(lf);
    const size = desc.labels.dtype === 'uint8' ? 1 : 4;
    const lo = desc.labels.offset ?? 0;
    if (buf.length - lo !== n * size) {
      throw formatError(lf, `image and label counts disagree: ${n} images, but the label file holds ${(buf.length - lo) / size} ${desc.labels.dtype} values`);
    }
    labels = new Int32Array(n);
    for (let i = 0; i < n; i++) labels[i] = size === 1 ? buf[lo + i] : buf.readInt32LE(lo + 4 * i);
  }
  return new RecordFileDataset({
    name: desc.name ?? where, file: imagesFile, length: n, shape: [c, h, w], dataOffset: offset,
    layout: desc.layout === 'NHWC' ? 'HWC' : 'CHW', labels, classNames: desc.classNames,
  });
}

/** Options of {@link writeRaw}. */
export interface WriteRawOptions {
  /** Images per read while converting (default 1024). */
  batchSize?: number;
  /** Called after every batch with the number of images written. */
  onProgress?: (written: number, total: number) => void;
}

/**
 * Writes any dataset as a raw uint8 dataset: `<json>` plus `<base>.images.u8` (NCHW) and, with labels,
 * `<base>.labels.i32` next to it. Each file is written to a temporary name and renamed when complete, the JSON last,
 * so an interrupted conversion never leaves a description of incomplete data. Returns the description.
 */
export async function writeRaw(dataset: Dataset, jsonFile: string, options: WriteRawOptions = {}): Promise<RawDescription> {
  const dir = path.dirname(path.resolve(jsonFile));
  const base = path.basename(jsonFile).replace(/\.json$/i, '');
  const imagesName = `${base}.images.u8`;
  const labelsName = `${base}.labels.i32`;
  const tmp = (f: string): string => path.join(dir, `.${f}.${process.pid}.tmp`);
  const opened: fs.promises.FileHandle[] = [];
  try {
    mkdirp(dir); // not fs.mkdir's recursive mode, which loops forever under /proc (see mkdirp)
    const img = await fs.promises.open(tmp(imagesName), 'w');
    opened.push(img);
    const lab = dataset.hasLabels ? await fs.promises.open(tmp(labelsName), 'w') : undefined;
    if (lab) opened.push(lab);
    let written = 0;
    for await (const b of batches(dataset, { batchSize: options.batchSize ?? 1024, readAhead: 2 })) {
      await img.write(b.images.data);
      if (lab && b.labels) await lab.write(new Uint8Array(b.labels.buffer, b.labels.byteOffset, b.labels.byteLength));
      written += b.indices.length;
      options.onProgress?.(written, dataset.length);
    }
    for (const f of opened.splice(0)) await f.close();
    await fs.promises.rename(tmp(imagesName), path.join(dir, imagesName));
    if (lab) await fs.promises.rename(tmp(labelsName), path.join(dir, labelsName));
    const desc: RawDescription = {
      shape: [dataset.length, ...dataset.shape], dtype: 'uint8', file: imagesName,
      ...(lab ? { labels: { file: labelsName, dtype: 'int32' as const } } : {}),
      ...(dataset.classNames ? { classNames: [...dataset.classNames] } : {}),
      name: dataset.name,
    };
    const tj = tmp(`${base}.json`);
    await fs.promises.writeFile(tj, JSON.stringify(desc, null, 2) + '\n');
    await fs.promises.rename(tj, path.resolve(jsonFile));
    return desc;
  } catch (err) {
    for (const f of opened) await f.close().catch(() => undefined);
    for (const f of [imagesName, labelsName, `${base}.json`]) await fs.promises.rm(tmp(f), { force: true }).catch(() => undefined);
    throw err instanceof HVAEError ? err : ioError(jsonFile, err, 'write');
  }
}
