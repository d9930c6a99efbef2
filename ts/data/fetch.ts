/**
 * Downloading named datasets: from the official sources (URLs and checksums in registry.ts) or from a mirror
 * (`baseUrl`, laid out like a data root: `<baseUrl>/<dataset folder>/<file>`). Every file is streamed to a temporary
 * file next to its destination while hashing, verified, and renamed into place only when complete and correct, so a
 * failed or interrupted download never leaves a partial file under the real name.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HVAEError } from '../errors.js';
import { mkdirp } from '../safetensors.js';
import { datasetSpec, DatasetSpec, FileSpec, SourceSpec, Split, splitSpec } from './registry.js';
import { dataRoots, defaultDataDir } from './roots.js';
import { hasChecksum, verifyFile } from './verify.js';
import { fmtBytes } from './util.js';

/** The subset of the WHATWG `fetch` used here (Node's global `fetch` fits). */
export type FetchLike = (url: string, init?: { signal?: AbortSignal; redirect?: 'follow' }) => Promise<{
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null;
}>;

/** Progress of one file download. */
export interface FetchProgress {
  /** Destination path. */
  file: string;
  /** Source URL. */
  url: string;
  /** Bytes received so far. */
  bytes: number;
  /** Total bytes, when the server says. */
  total?: number;
}

/** Options of {@link fetchDataset}. */
export interface FetchOptions {
  /** Data root to download into (default: the first `HVAE_DATA` folder, else `~/.cache/hvae-native/data`). */
  root?: string;
  /** A mirror laid out like a data root (`<baseUrl>/<folder>/<file>`), used instead of the official URLs. */
  baseUrl?: string;
  /** The fetch implementation (default: the global `fetch`). */
  fetchImpl?: FetchLike;
  /** Which splits (default: `'train'` and `'test'`; SVHN's 1.3 GB `'extra'` only when asked). */
  split?: Split | readonly Split[];
  /** Download again even when a verified file is present (default false). */
  force?: boolean;
  /** Give up on a request that has not completed after this many ms (default: no limit). */
  timeoutMs?: number;
  /** Aborts the downloads (`ERR_HVAE_ABORTED`). */
  signal?: AbortSignal;
  /** Called as bytes arrive. */
  onProgress?: (p: FetchProgress) => void;
}

/** One file handled by {@link fetchDataset}. */
export interface FetchedFile {
  /** Destination path. */
  path: string;
  /** Where it came from (for downloads). */
  url?: string;
  /** Size in bytes. */
  bytes: number;
  /** Its sha256. */
  sha256?: string;
  /** `'downloaded'`, or `'present'` when a verified copy was already there. */
  status: 'downloaded' | 'present';
  /** Whether a known checksum matched (false: none is known; a `.sha256` sidecar was written). */
  verified: boolean;
}

/** Result of {@link fetchDataset}. */
export interface FetchResult {
  /** Canonical dataset name. */
  name: string;
  /** The data root written to. */
  root: string;
  /** The files, in download order. */
  files: FetchedFile[];
}

/** A download the plan would make. */
export interface PlannedDownload {
  /** Split(s) it serves. */
  split: Split;
  /** Source id. */
  source: string;
  /** Path relative to the data root. */
  file: string;
  /** URLs tried in order. */
  urls: string[];
  /** Known checksums. */
  sha256?: readonly string[];
  /** Known md5 checksums. */
  md5?: readonly string[];
  /** Size in bytes, when known. */
  size?: number;
}

function splitsOf(spec: DatasetSpec, split: FetchOptions['split']): Split[] {
  const want: Split[] = split === undefined ? (['train', 'test'] as Split[]).filter((s) => spec.splits[s]) : typeof split === 'string' ? [split] : [...split];
  for (const s of want) splitSpec(spec, s);
  return want;
}

function candidates(spec: DatasetSpec, split: Split, baseUrl?: string): SourceSpec[] {
  return spec.splits[split]!.sources.filter((s) => s.files.every((f) => (f.kind ?? 'file') === 'file' && (baseUrl !== undefined || f.urls.length > 0)));
}

function urlsFor(spec: DatasetSpec, f: FileSpec, baseUrl?: string): string[] {
  if (baseUrl === undefined) return [...f.urls];
  return [`${baseUrl.replace(/\/+$/, '')}/${spec.dirs[0]}/${f.file.split('/').map(encodeURIComponent).join('/')}`];
}

/**
 * The downloads {@link fetchDataset} would try, per split, in order (the CLI prints this; no network access).
 */
export function downloadPlan(name: string, options: Pick<FetchOptions, 'split' | 'baseUrl'> = {}): PlannedDownload[] {
  const spec = datasetSpec(name);
  const out: PlannedDownload[] = [];
  for (const split of splitsOf(spec, options.split)) {
    for (const s of candidates(spec, split, options.baseUrl)) {
      for (const f of s.files) {
        out.push({ split, source: s.id, file: `${spec.dirs[0]}/${f.file}`, urls: urlsFor(spec, f, options.baseUrl), sha256: f.sha256, md5: f.md5, size: f.size });
      }
    }
  }
  return out;
}

class DownloadFailure extends Error {
  constructor(readonly kind: 'network' | 'http' | 'checksum' | 'io', message: string, readonly url: string, override readonly cause?: unknown) {
    super(message);
  }
}

function networkReason(err: unknown): string {
  const c = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = c?.code ?? (err as NodeJS.ErrnoException)?.code;
  const msg = c?.message ?? (err as Error)?.message ?? String(err);
  return code ? `${code}: ${msg}` : msg;
}

async function downloadOne(spec: DatasetSpec, f: FileSpec, url: string, dest: string, o: FetchOptions, fetchImpl: FetchLike): Promise<FetchedFile> {
  // mkdirp, not fs.mkdir's recursive mode, which loops forever under /proc.
  try {
    mkdirp(path.dirname(dest));
  } catch (err) {
    throw new DownloadFailure('io', `cannot create ${path.dirname(dest)}: ${(err as Error).message}`, url, err);
  }
  const signals: AbortSignal[] = [];
  if (o.signal) signals.push(o.signal);
  if (o.timeoutMs !== undefined) signals.push(AbortSignal.timeout(o.timeoutMs));
  const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  let res: Awaited<ReturnType<FetchLike>>;
  try {
    res = await fetchImpl(url, { signal, redirect: 'follow' });
  } catch (err) {
    if (o.signal?.aborted) throw new HVAEError('ERR_HVAE_ABORTED', `download of ${url} was aborted`, { cause: err });
    throw new DownloadFailure('network', networkReason(err), url, err);
  }
  if (!res.ok) throw new DownloadFailure('http', `HTTP ${res.status} ${res.statusText}`.trim(), url);
  if (!res.body) throw new DownloadFailure('http', 'empty response body', url);
  const total = Number(res.headers.get('content-length')) || undefined;
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.part`);
  const sha = crypto.createHash('sha256');
  let bytes = 0;
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'w');
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        // A fetchImpl that ignores its signal would otherwise download to the end after an abort.
        if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
        sha.update(chunk);
        bytes += chunk.length;
        await fh.write(chunk);
        o.onProgress?.({ file: dest, url, bytes, total });
      }
    } catch (err) {
      if (o.signal?.aborted) throw new HVAEError('ERR_HVAE_ABORTED', `download of ${url} was aborted`, { cause: err });
      if ((err as NodeJS.ErrnoException)?.code?.startsWith?.('E') && !(err as { cause?: unknown }).cause) throw new DownloadFailure('io', `cannot write ${tmp}: ${(err as Error).message}`, url, err);
      throw new DownloadFailure('network', `connection lost after ${fmtBytes(bytes)}: ${networkReason(err)}`, url, err);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    // The server answered but sent less than it announced: a bad answer from that source, not "offline".
    if (total !== undefined && bytes !== total) throw new DownloadFailure('http', `incomplete download: ${bytes} of ${total} bytes`, url);
    const sha256 = sha.digest('hex');
    let verified = false;
    if (hasChecksum(f)) {
      try {
        await verifyFile(tmp, f, spec.name);
        verified = true;
      } catch (err) {
        const msg = (err as Error).message.replace(`${spec.name}: `, '').replace(tmp, url).replace(/ The file is corrupt.*$/s, '');
        throw new DownloadFailure('checksum', `${msg} The server sent a damaged or different file; nothing was written.`, url, err);
      }
    }
    try {
      if (!verified) await fs.promises.writeFile(`${dest}.sha256`, `${sha256}  ${path.basename(dest)}\n`);
      await fs.promises.rename(tmp, dest);
    } catch (err) {
      throw new DownloadFailure('io', `cannot write ${dest}: ${(err as Error).message}`, url, err);
    }
    return { path: dest, url, bytes, sha256, status: 'downloaded', verified };
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Downloads a named dataset into a data root and verifies every file, skipping files already present and verified.
 * For each split the sources are tried in order (e.g. CIFAR-10: the official binary archive; from a mirror also the
 * PNG archive); an HTTP error moves on to the next source, a network error stops at once.
 *
 * Rejects with `ERR_HVAE_DATA` when the data cannot be obtained — offline or unreachable server (the message says so,
 * names the URL and the destination, and how to copy the file in by hand), HTTP errors, checksum mismatches —
 * `ERR_HVAE_OPTION` for an unknown name or split, `ERR_HVAE_ABORTED` when aborted.
 */
export async function fetchDataset(name: string, options: FetchOptions = {}): Promise<FetchResult> {
  const spec = datasetSpec(name);
  const fetchImpl = options.fetchImpl ?? (globalThis.fetch as unknown as FetchLike | undefined);
  if (!fetchImpl) throw new HVAEError('ERR_HVAE_OPTION', 'no fetch implementation: Node >= 18 provides one, or pass fetchImpl');
  if (options.baseUrl !== undefined && !/^https?:\/\//i.test(options.baseUrl)) {
    throw new HVAEError('ERR_HVAE_OPTION', `baseUrl must be an http(s) URL, got ${JSON.stringify(options.baseUrl)}`);
  }
  if (options.timeoutMs !== undefined && !(Number.isSafeInteger(options.timeoutMs) && options.timeoutMs > 0)) {
    throw new HVAEError('ERR_HVAE_OPTION', `timeoutMs must be a positive integer (milliseconds), got ${String(options.timeoutMs)}`);
  }
  if (options.root !== undefined && (typeof options.root !== 'string' || options.root === '')) {
    throw new HVAEError('ERR_HVAE_OPTION', 'root must be a folder path (a non-empty string); leave it out for the default data folder');
  }
  const root = path.resolve(options.root ?? (process.env.HVAE_DATA ? dataRoots().roots[0] : defaultDataDir()));
  const dir = path.join(root, spec.dirs[0]);
  const files: FetchedFile[] = [];
  const done = new Map<string, FetchedFile>();
  for (const split of splitsOf(spec, options.split)) {
    const cands = candidates(spec, split, options.baseUrl);
    if (!cands.length) {
      throw new HVAEError('ERR_HVAE_DATA', `${spec.name} (${split}) has no official download; copy the files into ${dir} (see docs/data.md), or pass baseUrl of a mirror`);
    }
    const failures: string[] = [];
    let ok = false;
    let current = '';
    for (const source of cands) {
      try {
        for (const f of source.files) {
          const dest = path.join(dir, ...f.file.split('/'));
          current = dest;
          if (done.has(dest)) continue;
          if (!options.force) {
            const present = await presentVerified(dest, f, spec.name);
            if (present) { done.set(dest, present); files.push(present); continue; }
          }
          const tried: DownloadFailure[] = [];
          let got: FetchedFile | undefined;
          for (const url of urlsFor(spec, f, options.baseUrl)) {
            try {
              got = await downloadOne(spec, f, url, dest, options, fetchImpl);
              break;
            } catch (err) {
              if (!(err instanceof DownloadFailure)) throw err;
              tried.push(err);
              failures.push(`${url}: ${err.message}`);
            }
          }
          if (!got) {
            // Every URL of this file unreachable: report them all as one network failure.
            if (tried.every((t) => t.kind === 'network')) {
              throw new DownloadFailure('network', tried.map((t) => `  ${t.url}: ${t.message}`).join('\n'), tried[0].url, tried[0].cause);
            }
            throw tried.find((t) => t.kind !== 'network')!;
          }
          done.set(dest, got);
          files.push(got);
        }
        ok = true;
        break;
      } catch (err) {
        if (!(err instanceof DownloadFailure)) throw err;
        if (err.kind === 'network') {
          const dest = current;
          throw new HVAEError('ERR_HVAE_DATA', [
            `cannot download ${spec.name} (${split}): no server could be reached:`,
            err.message,
            'This machine seems to be offline, or the servers are down or blocked.',
            `Download the file(s) elsewhere and copy them to ${dir} (e.g. ${dest}),`,
            'or pass baseUrl (hvae-native data fetch --base-url) pointing to a reachable mirror laid out as <baseUrl>/' + spec.dirs[0] + '/<file>.',
          ].join('\n'), { cause: err.cause ?? err });
        }
        if (err.kind === 'io') throw new HVAEError('ERR_HVAE_IO', `cannot download ${spec.name}: ${err.message}`, { cause: err.cause });
      }
    }
    if (!ok) {
      throw new HVAEError('ERR_HVAE_DATA', `cannot download ${spec.name} (${split}); every source failed:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
    }
  }
  return { name: spec.name, root, files };
}

async function presentVerified(dest: string, f: FileSpec, name: string): Promise<FetchedFile | undefined> {
  let st: fs.Stats;
  try { st = await fs.promises.stat(dest); } catch { return undefined; }
  if (!st.isFile()) return undefined;
  try {
    const v = await verifyFile(dest, f, name);
    if (v.status === 'verified' || (v.status === 'unverified' && !hasChecksum(f))) {
      return { path: dest, bytes: st.size, sha256: v.sha256, status: 'present', verified: v.status === 'verified' };
    }
  } catch {
    // A bad file is downloaded again (and replaced atomically).
  }
  return undefined;
}
