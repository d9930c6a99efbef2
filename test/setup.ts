/**
 * Mocha root setup: shared paths and a per-run temporary directory. Loaded via .mocharc.json `require`.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root. */
export const ROOT = path.resolve(__dirname, '..');
/** The read-only shared material (fixtures, data, ALGORITHM.md). */
export const SHARED = process.env.HVAE_SHARED ?? path.resolve(ROOT, '..', 'shared');
/** Fixtures folder. */
export const FIXTURES = path.join(SHARED, 'fixtures');

/**
 * The grey fixture's FashionMNIST inputs and its recorded standard-normal noise, in the engine's row order for
 * `scores(batch, { k: [1, 2], _noise })` (per encoder layer: the ELBO rows, then the L>1 rows, then L>2).
 */
export function greyFixtureBatch(): {
  batch: { data: Float32Array; shape: [number, number, number, number] };
  noise: { data: Float32Array; shape: number[] }[];
} {
  // Required lazily so that this setup file does not load the addon for test files that never need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { readSafetensors } = require('hvae-native') as typeof import('hvae-native');
  const t = (f: string) => readSafetensors(path.join(FIXTURES, 'grey', f)).tensors;
  const x = t('inputs.safetensors').get('x_fashion')!;
  const n = t('noise.safetensors');
  const cat = (...names: string[]) => {
    const parts = names.map((k) => n.get(k)!);
    const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
    let o = 0;
    for (const p of parts) { data.set(p.data as Float32Array, o); o += p.data.length; }
    const shape = parts[0].shape.slice();
    shape[0] = parts.reduce((s, p) => s + p.shape[0], 0);
    return { data, shape };
  };
  const noise = [cat('eps.elbo.z1'), cat('eps.elbo.z2', 'eps.k1.z2'), cat('eps.elbo.z3', 'eps.k1.z3', 'eps.k2.z3')];
  return { batch: { data: x.data as Float32Array, shape: x.shape as [number, number, number, number] }, noise };
}

/** The grey fixture's training batch and its posterior noise (`eps.train.*`, as test 20's training-step parity). */
export function greyTrainBatch(): {
  batch: { data: Float32Array; shape: [number, number, number, number] };
  noise: { data: Float32Array; shape: number[] }[];
} {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { readSafetensors } = require('hvae-native') as typeof import('hvae-native');
  const t = (f: string) => readSafetensors(path.join(FIXTURES, 'grey', f)).tensors;
  const x = t('inputs.safetensors').get('x_train')!;
  const n = t('noise.safetensors');
  return {
    batch: { data: x.data as Float32Array, shape: x.shape as [number, number, number, number] },
    noise: ['eps.train.z1', 'eps.train.z2', 'eps.train.z3'].map((k) => ({ data: n.get(k)!.data as Float32Array, shape: n.get(k)!.shape })),
  };
}

/**
 * Compares two sets of gradients by name (`collectGrads`): asserts every tensor's cosine and relative norm
 * difference, and the cosine of all of them as one vector, against the given bounds; returns the figures.
 */
export function compareGradients(
  a: Record<string, { data: Float32Array }>, b: Record<string, { data: Float32Array }>,
  bounds: { cosine: number; norm: number; cosineAll: number },
): { cosAll: number; worstCos: number; worstNorm: number; count: number } {
  let dotAll = 0, aAll = 0, bAll = 0, worstCos = 1, worstNorm = 0, count = 0;
  for (const [name, g] of Object.entries(a)) {
    const h = b[name];
    assert.ok(h, `no gradient for ${name} in the second set`);
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < g.data.length; i++) { dot += g.data[i] * h.data[i]; na += g.data[i] ** 2; nb += h.data[i] ** 2; }
    const cos = dot / Math.sqrt(na * nb);
    const norm = Math.abs(Math.sqrt(nb) - Math.sqrt(na)) / Math.sqrt(na);
    assert.ok(cos >= bounds.cosine && norm <= bounds.norm, `${name}: cosine ${cos}, norm ${Math.sqrt(nb)} vs ${Math.sqrt(na)}`);
    worstCos = Math.min(worstCos, cos);
    worstNorm = Math.max(worstNorm, norm);
    dotAll += dot; aAll += na; bAll += nb; count++;
  }
  const cosAll = dotAll / Math.sqrt(aAll * bAll);
  assert.ok(cosAll >= bounds.cosineAll, `whole-gradient cosine ${cosAll}`);
  return { cosAll, worstCos, worstNorm, count };
}

/**
 * One training step of `model` on the grey fixture's training batch and noise, in float32 and in bfloat16, without
 * the Adam step: asserts that the bfloat16 path ran, the loss within 1e-3 (mean) and 1% + 0.5 nats (per example) of
 * float32, every gradient within 0.9 cosine and 10% norm, and all gradients together within 0.999 cosine. Returns the
 * figures for the test's title.
 */
export async function checkBFloat16TrainStep(model: import('hvae-native').HVAE): Promise<{ cosAll: number; worstCos: number; worstNorm: number; count: number }> {
  const { batch, noise } = greyTrainBatch();
  const a = await model.trainStep(batch, { beta: 0.5, freeNats: 2, collectGrads: true, step: false, _noise: noise });
  const b = await model.trainStep(batch, { beta: 0.5, freeNats: 2, collectGrads: true, step: false, _noise: noise, precision: 'bfloat16' });
  assert.notEqual(b.lossMean, a.lossMean, 'bit-identical loss: the bfloat16 path did not run');
  assert.ok(Math.abs(b.lossMean - a.lossMean) <= 1e-3 * Math.abs(a.lossMean), `loss ${b.lossMean} vs float32 ${a.lossMean}`);
  for (let i = 0; i < a.loss.length; i++) {
    assert.ok(Math.abs(b.loss[i] - a.loss[i]) <= 0.5 + 0.01 * Math.abs(a.loss[i]), `loss[${i}] ${b.loss[i]} vs ${a.loss[i]}`);
  }
  return compareGradients(a.grads!, b.grads!, { cosine: 0.9, norm: 0.1, cosineAll: 0.999 });
}

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
