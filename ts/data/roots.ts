/**
 * Data roots: where named datasets are looked for and downloaded to (see datasets.ts).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { HVAEError } from '../errors.js';

/** The download cache: `$XDG_CACHE_HOME/hvae-native/data`, else `~/.cache/hvae-native/data`. */
export function defaultDataDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'hvae-native', 'data');
}

/** The default data roots (used when neither `options.root` nor `HVAE_DATA` is set). */
export function defaultDataRoots(): string[] {
  const pkgRoot = path.resolve(__dirname, '..', '..');
  const roots = [
    defaultDataDir(),
    '/usr/share/datasets',
    path.resolve(pkgRoot, '..', 'shared', 'data'),
    path.resolve(process.cwd(), 'data'),
    path.resolve(process.cwd(), '..', 'shared', 'data'),
  ];
  return [...new Set(roots)];
}

/** Where datasets are looked for. */
export interface RootOptions {
  /** A data root (or several): only these are searched. Default: env `HVAE_DATA`, else {@link defaultDataRoots}. */
  root?: string | readonly string[];
}

/** The data roots to search, and where that list came from. */
export function dataRoots(options: RootOptions = {}): { roots: string[]; from: 'option' | 'env' | 'default' } {
  if (options.root !== undefined) {
    const r = typeof options.root === 'string' ? [options.root] : [...options.root];
    if (!r.length || !r.every((x) => typeof x === 'string' && x)) throw new HVAEError('ERR_HVAE_OPTION', `root must be a folder path or a list of them, got ${JSON.stringify(options.root)}`);
    return { roots: r.map((x) => path.resolve(x)), from: 'option' };
  }
  const env = process.env.HVAE_DATA;
  if (env) return { roots: env.split(path.delimiter).filter(Boolean).map((x) => path.resolve(x)), from: 'env' };
  return { roots: defaultDataRoots(), from: 'default' };
}

