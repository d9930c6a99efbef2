/**
 * Mocha root setup: shared paths and a per-run temporary directory. Loaded via .mocharc.json `require`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root. */
export const ROOT = path.resolve(__dirname, '..');
/** The read-only shared material (fixtures, data, ALGORITHM.md). */
export const SHARED = process.env.HVAE_SHARED ?? path.resolve(ROOT, '..', 'shared');
/** Fixtures folder. */
export const FIXTURES = path.join(SHARED, 'fixtures');

let tmpRoot: string | undefined;
/** A fresh temporary directory for one test (removed at the end of the run). */
export function tmpDir(prefix = 'hvae-test-'): string {
  if (!tmpRoot) tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'hvae-tests-'));
  return fs.mkdtempSync(path.join(tmpRoot, prefix));
}

export const mochaHooks = {
  afterAll(): void {
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
  },
};
