/**
 * Named datasets: resolve a dataset's files under the data roots, verify them, and open them as a {@link Dataset}.
 *
 * Data roots, in order: `options.root` if given (only it); else the folders in env `HVAE_DATA` (separated by `:`);
 * else the defaults {@link defaultDataRoots}: the download cache (`$XDG_CACHE_HOME/hvae-native/data` or
 * `~/.cache/hvae-native/data`), `/usr/share/datasets` (Debian's dataset packages), and `../shared/data` next to the
 * package, then `./data` and `../shared/data` relative to the working directory. Inside a root each dataset has a
 * folder (`fashion-mnist/`, `mnist/`, `cifar10/`, … see {@link DATASETS}); the first match wins.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HVAEError } from '../errors.js';
import { DATASET_NAMES, DatasetName, datasetSpec, DatasetSpec, SourceSpec, Split, splitSpec } from './registry.js';
import { dataRoots, defaultDataDir, RootOptions } from './roots.js';
import { Dataset, ImageShape } from './stream.js';
import { VerifiedFile, verifyFile } from './verify.js';

export { DATASET_NAMES, DATASETS, datasetSpec } from './registry.js';
export type { DatasetName, DatasetSpec, FileSpec, SourceSpec, Split, SplitSpec } from './registry.js';
export { fetchDataset, downloadPlan } from './fetch.js';
export { dataRoots, defaultDataDir, defaultDataRoots } from './roots.js';
export type { RootOptions } from './roots.js';
export type { FetchOptions, FetchResult, FetchedFile, FetchLike, FetchProgress, PlannedDownload } from './fetch.js';

/** A dataset split located on disk. */
export interface ResolvedDataset {
  /** The dataset. */
  spec: DatasetSpec;
  /** The split. */
  split: Split;
  /** The source (file layout) found. */
  source: SourceSpec;
  /** The folder holding the files. */
  dir: string;
  /** Absolute paths of the source's files. */
  paths: string[];
}

async function exists(p: string, kind: 'file' | 'dir'): Promise<boolean> {
  try {
    const st = await fs.promises.stat(p);
    return kind === 'dir' ? st.isDirectory() : st.isFile();
  } catch {
    return false;
  }
}

/**
 * Finds a dataset split's files under the data roots without opening them. Rejects with `ERR_HVAE_DATA` listing every
 * folder looked at, what was missing there, and how to get the data; `ERR_HVAE_OPTION` for an unknown name or split.
 */
export async function resolveDataset(name: string, options: RootOptions & { split?: Split } = {}): Promise<ResolvedDataset> {
  const spec = datasetSpec(name);
  const split = options.split ?? 'train';
  const ss = splitSpec(spec, split);
  const { roots, from } = dataRoots(options);
  const looked: string[] = [];
  for (const root of roots) {
    for (const d of spec.dirs) {
      const dir = path.resolve(root, d);
      const missing: string[] = [];
      for (const source of ss.sources) {
        const paths = source.files.map((f) => path.join(dir, f.file));
        const present = await Promise.all(source.files.map((f, i) => exists(paths[i], f.kind ?? 'file')));
        if (present.every(Boolean)) return { spec, split, source, dir, paths };
        missing.push(source.files.filter((_, i) => !present[i]).map((f) => f.file).join(' + '));
      }
      looked.push(`  ${dir}: no ${missing.join(', no ')}`);
    }
  }
  const dest = path.join(from === 'option' ? roots[0] : from === 'env' ? roots[0] : defaultDataDir(), spec.dirs[0]);
  const official = ss.sources.find((s) => s.files.every((f) => f.urls.length));
  const how = [
    official ? `run \`hvae-native data fetch ${spec.name}\` (or fetchDataset('${spec.name}')) to download ${official.files.map((f) => f.urls[0]).join(', ')} into ${dest}` : undefined,
    ...(spec.howToGet ?? []),
    `or copy the files into one of the folders above${from === 'option' ? '' : `, or set HVAE_DATA (or pass root) to a folder that contains ${spec.dirs[0]}/`}`,
  ].filter(Boolean);
  throw new HVAEError('ERR_HVAE_DATA', [
    `${spec.name} (${split} split) was not found. Looked in (data roots from ${from === 'option' ? 'options.root' : from === 'env' ? 'HVAE_DATA' : 'the defaults'}):`,
    ...looked,
    'To get it:',
    ...how.map((h) => `  - ${h}`),
  ].join('\n'));
}

/** Options of {@link loadDataset}. */
export interface LoadDatasetOptions extends RootOptions {
  /** `'train'` (default), `'test'`, or `'extra'` (SVHN only). See docs/data.md for what each maps to. */
  split?: Split;
  /**
   * Checksum verification: `true` (default) rejects files whose checksum does not match and accepts files without a
   * known checksum; `'strict'` also rejects files without one; `false` skips verification.
   */
  verify?: boolean | 'strict';
  /** Skip undecodable images in image archives (default true for notMNIST's archives, false otherwise). */
  skipUnreadable?: boolean;
  /** Called for every skipped image. */
  onSkip?: (file: string, error: HVAEError) => void;
  /** Decode concurrency for image archives. */
  concurrency?: number;
  /**
   * Check that the split has its standard number of images (default true: a different count is `ERR_HVAE_DATA`).
   * Set false to open partial or modified copies laid out like the originals.
   */
  checkCount?: boolean;
}

/** A loaded named dataset, with where it came from. */
export interface NamedDataset extends Dataset {
  /** Canonical dataset name. */
  readonly dataset: DatasetName;
  /** The split. */
  readonly split: Split;
  /** The source layout used (e.g. `'idx-gz'`). */
  readonly sourceId: string;
  /** The files read, with their verification outcome. */
  readonly files: readonly VerifiedFile[];
  /** Images skipped as unreadable (image archives with `skipUnreadable`), with the reason. */
  readonly skipped: readonly { file: string; reason: string }[];
}

/**
 * Finds, verifies and opens a named dataset split. The result streams with {@link batches}. Rejects with
 * `ERR_HVAE_DATA` (not found — the message lists every place looked at and how to get it —, checksum mismatch,
 * unexpected image count), `ERR_HVAE_FORMAT` (corrupt files), `ERR_HVAE_OPTION` (unknown name or split).
 *
 * @example
 * const train = await loadDataset('FashionMNIST', { split: 'train' });   // 60000 x 1x28x28
 */
export async function loadDataset(name: string, options: LoadDatasetOptions = {}): Promise<NamedDataset> {
  const r = await resolveDataset(name, options);
  const verify = options.verify ?? true;
  if (verify !== true && verify !== false && verify !== 'strict') {
    throw new HVAEError('ERR_HVAE_OPTION', `verify must be true, false or 'strict', got ${JSON.stringify(verify)}`);
  }
  const label = `${r.spec.name} ${r.split}`;
  const files: VerifiedFile[] = [];
  for (let i = 0; i < r.paths.length; i++) {
    const f = verify ? await verifyFile(r.paths[i], r.source.files[i], label) : { path: r.paths[i], status: 'skipped' as const };
    if (verify === 'strict' && f.status === 'unverified') {
      throw new HVAEError('ERR_HVAE_DATA', `${label}: ${f.path} cannot be verified (no checksum is known for it and no ${path.basename(f.path)}.sha256 exists); use verify: true to accept it`);
    }
    files.push(f);
  }
  let ds = await r.source.open(r.paths, { name: label, skipUnreadable: options.skipUnreadable, onSkip: options.onSkip, concurrency: options.concurrency });
  if (options.checkCount !== false && r.source.count !== undefined && ds.length !== r.source.count) {
    throw new HVAEError('ERR_HVAE_DATA', `${label}: expected ${r.source.count} images in ${r.paths.join(', ')}, found ${ds.length}; the files are not the standard ${r.spec.name} ${r.split} split`);
  }
  const skipped = (ds as { skipped?: readonly { file: string; reason: string }[] }).skipped ?? [];
  if (r.spec.post) ds = r.spec.post(ds, label);
  const s = ds.shape;
  const e = r.spec.shape;
  if (s[0] !== e[0] || s[1] !== e[1] || s[2] !== e[2]) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${label}: images are ${s.join('x')}, expected ${e.join('x')}`);
  }
  const inner = ds;
  return {
    name: label,
    length: inner.length,
    shape: inner.shape,
    hasLabels: inner.hasLabels,
    classNames: inner.classNames ?? r.spec.classNames,
    read: (indices) => inner.read(indices),
    dataset: r.spec.name,
    split: r.split,
    sourceId: r.source.id,
    files,
    skipped,
  };
}

/** Summary of a built-in dataset (for listings and the CLI). */
export interface DatasetInfo {
  /** Canonical name. */
  name: DatasetName;
  /** Image shape. */
  shape: ImageShape;
  /** Class names. */
  classNames?: readonly string[];
  /** Homepage. */
  homepage: string;
  /** Splits with what they map to in the reference and the file layouts accepted. */
  splits: { split: Split; reference: string; sources: { id: string; description: string; files: string[]; count?: number }[] }[];
  /** Folder names under a data root. */
  dirs: readonly string[];
  /** Notes. */
  notes?: string;
}

/** Describes one built-in dataset. */
export function datasetInfo(name: string): DatasetInfo {
  const spec = datasetSpec(name);
  return {
    name: spec.name,
    shape: spec.shape,
    classNames: spec.classNames,
    homepage: spec.homepage,
    dirs: spec.dirs,
    notes: spec.notes,
    splits: (Object.keys(spec.splits) as Split[]).map((split) => ({
      split,
      reference: spec.splits[split]!.reference,
      sources: spec.splits[split]!.sources.map((s) => ({ id: s.id, description: s.description, files: s.files.map((f) => f.file), count: s.count })),
    })),
  };
}

/** Describes every built-in dataset. */
export function listDatasets(): DatasetInfo[] {
  return DATASET_NAMES.map((n) => datasetInfo(n));
}
