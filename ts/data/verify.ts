/**
 * Checksum verification of dataset files against {@link FileSpec} checksums. A file is accepted when any listed
 * digest matches: its sha256 or md5, or (for gzip files) the sha256/md5 of its decompressed contents, which does not
 * depend on how it was compressed (Debian's FashionMNIST files are recompressed, for instance). Files without any
 * known checksum are accepted as "unverified" unless a `<file>.sha256` sidecar written by `fetchDataset` exists, in
 * which case it must match. Results are cached per path, size and modification time.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { HVAEError } from '../errors.js';
import type { FileSpec } from './registry.js';
import { fileIsGzip, hashFile, ioError, zlibError } from './util.js';

/** Outcome of verifying one file. */
export interface VerifiedFile {
  /** Absolute path. */
  path: string;
  /** `'verified'` (a known checksum matched), `'unverified'` (none known), `'skipped'` (verification off or a folder). */
  status: 'verified' | 'unverified' | 'skipped';
  /** What matched, e.g. `'sha256'`, `'md5'`, `'content-sha256'`, `'sidecar'`. */
  matched?: string;
  /** The file's sha256 (when computed). */
  sha256?: string;
}

const cache = new Map<string, VerifiedFile>();

/** Whether a spec lists any checksum. */
export function hasChecksum(spec: FileSpec): boolean {
  return !!(spec.sha256?.length || spec.md5?.length || spec.contentSha256?.length || spec.contentMd5?.length);
}

/** sha256 and md5 of a gzip file's decompressed contents. */
export async function hashContents(file: string): Promise<{ sha256: string; md5: string }> {
  const s = crypto.createHash('sha256');
  const m = crypto.createHash('md5');
  await new Promise<void>((resolve, reject) => {
    const rs = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    const g = zlib.createGunzip();
    rs.on('error', (err) => reject(ioError(file, err)));
    g.on('error', (err) => reject(zlibError(file, err)));
    g.on('data', (c: Buffer) => { s.update(c); m.update(c); });
    g.on('end', resolve);
    rs.pipe(g);
  });
  return { sha256: s.digest('hex'), md5: m.digest('hex') };
}

/**
 * Checks a file against its spec. Rejects with `ERR_HVAE_DATA` on a mismatch (naming the file, the expected and the
 * actual digests, and what to do), `ERR_HVAE_DATA`/`ERR_HVAE_IO` when it cannot be read.
 */
export async function verifyFile(file: string, spec: FileSpec, datasetName: string): Promise<VerifiedFile> {
  if (spec.kind === 'dir') return { path: file, status: 'skipped' };
  let st: fs.Stats;
  try { st = await fs.promises.stat(file); } catch (err) { throw ioError(file, err, 'verify'); }
  const key = `${file}\0${st.size}\0${st.mtimeMs}\0${JSON.stringify(spec)}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const result = await computeVerification(file, spec, datasetName, st.size);
  cache.set(key, result);
  return result;
}

async function computeVerification(file: string, spec: FileSpec, datasetName: string, size: number): Promise<VerifiedFile> {
  const h = await hashFile(file, ['sha256', 'md5']);
  if (spec.sha256?.includes(h.sha256)) return { path: file, status: 'verified', matched: 'sha256', sha256: h.sha256 };
  if (spec.md5?.includes(h.md5)) return { path: file, status: 'verified', matched: 'md5', sha256: h.sha256 };
  let content: { sha256: string; md5: string } | undefined;
  if ((spec.contentSha256?.length || spec.contentMd5?.length) && await fileIsGzip(file)) {
    try {
      content = await hashContents(file);
    } catch {
      content = undefined; // corrupt gzip: no content checksum can match; reported as a mismatch below
    }
    if (content && spec.contentSha256?.includes(content.sha256)) return { path: file, status: 'verified', matched: 'content-sha256', sha256: h.sha256 };
    if (content && spec.contentMd5?.includes(content.md5)) return { path: file, status: 'verified', matched: 'content-md5', sha256: h.sha256 };
  }
  if (!hasChecksum(spec)) {
    const sidecar = await readSidecar(file);
    if (sidecar === undefined) return { path: file, status: 'unverified', sha256: h.sha256 };
    if (sidecar === h.sha256) return { path: file, status: 'verified', matched: 'sidecar', sha256: h.sha256 };
    throw new HVAEError('ERR_HVAE_DATA', `${datasetName}: ${file} does not match its recorded checksum ${file}.sha256 (expected sha256 ${sidecar}, got ${h.sha256}); the file changed since it was downloaded. Delete both and fetch again.`);
  }
  const expected: string[] = [];
  if (spec.sha256?.length) expected.push(`sha256 ${spec.sha256.join(' or ')}`);
  if (spec.md5?.length) expected.push(`md5 ${spec.md5.join(' or ')}`);
  if (spec.contentSha256?.length) expected.push(`sha256 of the gunzipped contents ${spec.contentSha256.join(' or ')}`);
  if (spec.contentMd5?.length) expected.push(`md5 of the gunzipped contents ${spec.contentMd5.join(' or ')}`);
  const got = `sha256 ${h.sha256}, md5 ${h.md5}${content ? `, contents sha256 ${content.sha256}` : ''}, ${size} bytes${spec.size ? ` (expected ${spec.size})` : ''}`;
  throw new HVAEError('ERR_HVAE_DATA', `${datasetName}: checksum mismatch for ${file}: expected ${expected.join(', or ')}; got ${got}. The file is corrupt, incomplete or a different version: delete it and fetch it again, or pass verify: false to use it anyway.`);
}

async function readSidecar(file: string): Promise<string | undefined> {
  try {
    const text = await fs.promises.readFile(`${file}.sha256`, 'utf8');
    const m = /^([0-9a-f]{64})\b/i.exec(text.trim());
    return m ? m[1].toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/** Forgets cached verification results (for tests). */
export function clearVerificationCache(): void {
  cache.clear();
}
