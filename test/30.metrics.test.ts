/**
 * OOD metrics against scikit-learn 1.2.1 (fixtures/metrics/cases.json), invariances, errors, and a 10^6 vs 10^6 run.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  auprIn,
  auprOut,
  auroc,
  averagePrecision,
  fprAtTpr,
  OODMetricAccumulator,
  oodMetrics,
  precisionRecallCurve,
  rocCurve,
} from '../lib/metrics.js';
import { HVAEError } from '../lib/errors.js';
import { FIXTURES } from './setup.js';

interface Curve {
  [k: string]: number[];
}
interface MetricCase {
  name: string;
  n_in: number;
  n_out: number;
  scores_in: number[];
  scores_out: number[];
  auroc: number;
  average_precision: number;
  fpr80: number;
  fpr80_drop_intermediate_false: number;
  n_roc_points: number;
  n_roc_points_no_drop: number;
  roc_curve?: Curve;
  roc_curve_drop_intermediate_false?: Curve;
  precision_recall_curve?: Curve;
}

const TOL = 1e-9;
const cases: MetricCase[] = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'metrics', 'cases.json'), 'utf8')).cases;

function close(actual: number, expected: number, what: string, tol = TOL): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`);
}

function closeArray(actual: ArrayLike<number>, expected: readonly number[], what: string, tol = TOL): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) close(actual[i], expected[i], `${what}[${i}]`, tol);
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(n: number, mean: number, sd: number, rand: () => number, quantum = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rand();
    const v = rand();
    let x = mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    if (quantum > 0) x = Math.round(x / quantum) * quantum;
    out[i] = x;
  }
  return out;
}

function shuffled(x: readonly number[], rand: () => number): number[] {
  const y = x.slice();
  for (let i = y.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [y[i], y[j]] = [y[j], y[i]];
  }
  return y;
}

const neg = (x: ArrayLike<number>): number[] => Array.from(x, (v) => -v);

/**
 * Reference AUROC via midranks (Mann–Whitney U): sort the pooled scores, give each OOD score the mean 1-based rank
 * of its tie group (found by binary search), AUROC = (R_out − nOut(nOut+1)/2) / (nIn·nOut).
 */
function rankAuroc(sIn: Float64Array, sOut: Float64Array): number {
  const pooled = new Float64Array(sIn.length + sOut.length);
  pooled.set(sIn);
  pooled.set(sOut, sIn.length);
  pooled.sort();
  const lowerBound = (v: number): number => {
    let lo = 0;
    let hi = pooled.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pooled[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const upperBound = (v: number): number => {
    let lo = 0;
    let hi = pooled.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pooled[mid] <= v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  let rankSum = 0;
  for (let i = 0; i < sOut.length; i++) rankSum += (lowerBound(sOut[i]) + 1 + upperBound(sOut[i])) / 2;
  const nOut = sOut.length;
  return (rankSum - (nOut * (nOut + 1)) / 2) / (sIn.length * nOut);
}

function assertHVAEError(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HVAEError, `expected HVAEError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

describe('metrics: sklearn 1.2.1 fixtures', () => {
  it('has the expected cases', () => {
    assert.deepEqual(
      cases.map((c) => c.name),
      ['tiny', 'ties', 'identical', 'large', 'separable', 'near_ties_reversed'],
    );
  });

  for (const c of cases) {
    describe(`case ${c.name} (${c.n_in} in / ${c.n_out} out)`, () => {
      it('auroc, averagePrecision, fpr80 (both thinning modes)', () => {
        assert.equal(c.scores_in.length, c.n_in);
        assert.equal(c.scores_out.length, c.n_out);
        close(auroc(c.scores_in, c.scores_out), c.auroc, 'auroc');
        close(averagePrecision(c.scores_in, c.scores_out), c.average_precision, 'average_precision');
        close(auprOut(c.scores_in, c.scores_out), c.average_precision, 'auprOut');
        close(fprAtTpr(c.scores_in, c.scores_out, 0.8), c.fpr80, 'fpr80');
        close(fprAtTpr(c.scores_in, c.scores_out, 0.8, { dropIntermediate: true }), c.fpr80, 'fpr80 (explicit)');
        close(
          fprAtTpr(c.scores_in, c.scores_out, 0.8, { dropIntermediate: false }),
          c.fpr80_drop_intermediate_false,
          'fpr80_drop_intermediate_false',
        );
      });

      it('oodMetrics agrees with sklearn and with the single-metric functions', () => {
        const m = oodMetrics(c.scores_in, c.scores_out);
        close(m.auroc, c.auroc, 'auroc');
        close(m.auprc, c.average_precision, 'auprc');
        close(m.auprOut, c.average_precision, 'auprOut');
        close(m.fpr80, c.fpr80, 'fpr80');
        assert.equal(m.nIn, c.n_in);
        assert.equal(m.nOut, c.n_out);
        close(m.fpr95, fprAtTpr(c.scores_in, c.scores_out, 0.95), 'fpr95');
        close(m.auprIn, auprIn(c.scores_in, c.scores_out), 'auprIn');
        // AUPR-In is AP with in-distribution positive and negated scores.
        close(m.auprIn, averagePrecision(neg(c.scores_out), neg(c.scores_in)), 'auprIn via negation');
      });

      it('the ROC curve has as many points as sklearn', () => {
        const thin = rocCurve(c.scores_in, c.scores_out);
        const full = rocCurve(c.scores_in, c.scores_out, { dropIntermediate: false });
        assert.equal(thin.fpr.length, c.n_roc_points);
        assert.equal(full.fpr.length, c.n_roc_points_no_drop);
        for (const r of [thin, full]) {
          assert.equal(r.thresholds[0], Infinity);
          assert.equal(r.fpr[0], 0);
          assert.equal(r.tpr[0], 0);
          assert.equal(r.fpr[r.fpr.length - 1], 1);
          assert.equal(r.tpr[r.tpr.length - 1], 1);
          for (let i = 1; i < r.thresholds.length; i++) assert.ok(r.thresholds[i] < r.thresholds[i - 1]);
        }
        // fprAtTpr is "first index with tpr >= target" on the corresponding curve.
        for (const [r, drop] of [[thin, true], [full, false]] as const) {
          for (const target of [0.1, 0.5, 0.8, 0.95, 1]) {
            let idx = 0;
            while (r.tpr[idx] < target) idx++;
            assert.equal(fprAtTpr(c.scores_in, c.scores_out, target, { dropIntermediate: drop }), r.fpr[idx]);
          }
        }
      });

      it('accumulator over batches (booleans and per-sample labels) equals oodMetrics', () => {
        const expected = oodMetrics(c.scores_in, c.scores_out);
        const acc = new OODMetricAccumulator();
        const half = Math.floor(c.n_in / 2);
        acc.update(c.scores_in.slice(0, half), false);
        const mixedScores = [...c.scores_in.slice(half), ...c.scores_out];
        const mixedLabels = [...c.scores_in.slice(half).map(() => 0), ...c.scores_out.map(() => 1)];
        // Use a mix of label encodings.
        acc.update(Float64Array.from(mixedScores), Uint8Array.from(mixedLabels));
        assert.equal(acc.nIn, c.n_in);
        assert.equal(acc.nOut, c.n_out);
        assert.deepEqual(acc.compute(), expected);
        acc.reset();
        assert.equal(acc.nIn, 0);
        acc.update(c.scores_out, c.scores_out.map(() => true));
        acc.update([], true);
        acc.update(c.scores_in, false);
        assert.deepEqual(acc.compute(), expected);
      });
    });
  }
});

describe('metrics: tiny case full curves', () => {
  const tiny = cases.find((c) => c.name === 'tiny')!;

  for (const [key, drop] of [
    ['roc_curve', true],
    ['roc_curve_drop_intermediate_false', false],
  ] as const) {
    it(`rocCurve matches sklearn ${key} (thresholds except the first)`, () => {
      const exp = tiny[key]!;
      const r = rocCurve(tiny.scores_in, tiny.scores_out, { dropIntermediate: drop });
      closeArray(r.fpr, exp.fpr, 'fpr');
      closeArray(r.tpr, exp.tpr, 'tpr');
      assert.equal(r.thresholds.length, exp.thresholds.length);
      // sklearn 1.2.1 has max(score)+1 first; we use +Infinity (newer sklearn).
      close(exp.thresholds[0], Math.max(...tiny.scores_in, ...tiny.scores_out) + 1, 'sklearn thresholds[0]');
      assert.equal(r.thresholds[0], Infinity);
      closeArray(r.thresholds.subarray(1), exp.thresholds.slice(1), 'thresholds[1:]', 0);
    });
  }

  it('precisionRecallCurve matches sklearn precision_recall_curve', () => {
    const exp = tiny.precision_recall_curve!;
    const r = precisionRecallCurve(tiny.scores_in, tiny.scores_out);
    closeArray(r.precision, exp.precision, 'precision');
    closeArray(r.recall, exp.recall, 'recall');
    closeArray(r.thresholds, exp.thresholds, 'thresholds', 0);
  });

  it('average precision is the step sum over the precision-recall curve', () => {
    for (const c of cases) {
      const r = precisionRecallCurve(c.scores_in, c.scores_out);
      let ap = 0;
      for (let i = 0; i + 1 < r.recall.length; i++) ap += (r.recall[i] - r.recall[i + 1]) * r.precision[i];
      close(ap, c.average_precision, `${c.name} AP from curve`);
    }
  });
});

describe('metrics: invariances', () => {
  const rand = rng(1234);
  for (const c of cases) {
    it(`case ${c.name}: swapping classes or negating scores gives 1 − AUROC; both gives AUROC`, () => {
      close(auroc(c.scores_out, c.scores_in), 1 - c.auroc, 'swap');
      close(auroc(neg(c.scores_in), neg(c.scores_out)), 1 - c.auroc, 'negate');
      close(auroc(neg(c.scores_out), neg(c.scores_in)), c.auroc, 'swap + negate');
    });

    it(`case ${c.name}: shuffling the input order changes nothing`, () => {
      const a = oodMetrics(c.scores_in, c.scores_out);
      const b = oodMetrics(shuffled(c.scores_in, rand), shuffled(c.scores_out, rand));
      assert.deepEqual(b, a);
      const r1 = rocCurve(c.scores_in, c.scores_out);
      const r2 = rocCurve(shuffled(c.scores_in, rand), shuffled(c.scores_out, rand));
      assert.deepEqual(r2, r1);
    });
  }

  it('a shift and a positive scaling of the scores change nothing', () => {
    const c = cases.find((x) => x.name === 'ties')!;
    const f = (v: number): number => 3 * v + 7; // exact for these small integers
    assert.deepEqual(oodMetrics(c.scores_in.map(f), c.scores_out.map(f)), oodMetrics(c.scores_in, c.scores_out));
  });

  it('Float32Array, Float64Array and number[] give the same result', () => {
    const c = cases.find((x) => x.name === 'large')!;
    const in32 = Float32Array.from(c.scores_in);
    const out32 = Float32Array.from(c.scores_out);
    const a = oodMetrics(in32, out32);
    assert.deepEqual(oodMetrics(Array.from(in32), Array.from(out32)), a);
    assert.deepEqual(oodMetrics(Float64Array.from(in32), Float64Array.from(out32)), a);
    close(a.auroc, c.auroc, 'float32 auroc', 1e-4);
    assert.deepEqual(oodMetrics(Float64Array.from(c.scores_in), c.scores_out), oodMetrics(c.scores_in, c.scores_out));
  });

  it('inputs are not modified', () => {
    const sIn = [3, 1, 2];
    const sOut = new Float64Array([5, 0, 4]);
    oodMetrics(sIn, sOut);
    rocCurve(sIn, sOut);
    precisionRecallCurve(sIn, sOut);
    assert.deepEqual(sIn, [3, 1, 2]);
    assert.deepEqual(Array.from(sOut), [5, 0, 4]);
  });

  it('edge values: single samples, all tied, -0 and +0, fprAtTpr at 0 and 1', () => {
    assert.equal(auroc([0], [1]), 1);
    assert.equal(auroc([1], [0]), 0);
    assert.equal(auroc([2, 2], [2, 2, 2]), 0.5);
    close(averagePrecision([2, 2], [2, 2, 2]), 0.6, 'all-tied AP');
    assert.equal(fprAtTpr([2, 2], [2, 2, 2], 0.8), 1);
    assert.deepEqual(oodMetrics([-0], [0]), oodMetrics([0], [0]));
    assert.equal(rocCurve([-0, 0, 1], [0]).thresholds.length, 3);
    assert.equal(fprAtTpr([0, 1, 2], [1.5, 3], 0), 0);
    assert.equal(fprAtTpr([0, 1, 2], [1.5, 3], 1), 1 / 3);
    assert.equal(fprAtTpr([0, 1, 2], [1.5, 3], 0.5), 0);
  });
});

describe('metrics: errors', () => {
  const fns: Array<[string, (a: never, b: never) => unknown]> = [
    ['auroc', auroc],
    ['averagePrecision', averagePrecision],
    ['auprIn', auprIn],
    ['auprOut', auprOut],
    ['oodMetrics', oodMetrics],
    ['rocCurve', rocCurve],
    ['precisionRecallCurve', precisionRecallCurve],
    ['fprAtTpr', (a, b) => fprAtTpr(a, b, 0.8)],
  ];
  for (const [name, fn] of fns) {
    it(`${name}: empty sets, NaN/Infinity, non-arrays`, () => {
      const f = fn as (a: unknown, b: unknown) => unknown;
      assertHVAEError(() => f([], [1, 2]), 'ERR_HVAE_OPTION');
      assertHVAEError(() => f([1, 2], new Float32Array(0)), 'ERR_HVAE_OPTION');
      assertHVAEError(() => f([1, NaN], [1, 2]), 'ERR_HVAE_NONFINITE');
      assertHVAEError(() => f([1, 2], Float32Array.from([0, NaN])), 'ERR_HVAE_NONFINITE');
      assertHVAEError(() => f([1, 2], [0, Infinity]), 'ERR_HVAE_NONFINITE');
      assertHVAEError(() => f([1, -Infinity], [0, 1]), 'ERR_HVAE_NONFINITE');
      assertHVAEError(() => f([1, '2'], [0, 1]), 'ERR_HVAE_OPTION');
      assertHVAEError(() => f('12', [0, 1]), 'ERR_HVAE_OPTION');
      assertHVAEError(() => f([1, 2], undefined), 'ERR_HVAE_OPTION');
    });
  }

  it('fprAtTpr / rocCurve: bad target and options', () => {
    assertHVAEError(() => fprAtTpr([1], [2], 1.5), 'ERR_HVAE_OPTION');
    assertHVAEError(() => fprAtTpr([1], [2], -0.1), 'ERR_HVAE_OPTION');
    assertHVAEError(() => fprAtTpr([1], [2], NaN), 'ERR_HVAE_OPTION');
    assertHVAEError(() => rocCurve([1], [2], { dropIntermediat: true } as never), 'ERR_HVAE_OPTION');
    assertHVAEError(() => rocCurve([1], [2], { dropIntermediate: 1 } as never), 'ERR_HVAE_OPTION');
  });

  it('accumulator: mismatched labels, bad labels, NaN, missing class; failed updates leave it unchanged', () => {
    const acc = new OODMetricAccumulator();
    acc.update([1, 2], [0, 1]);
    assertHVAEError(() => acc.update([1, 2, 3], [0, 1]), 'ERR_HVAE_OPTION');
    assertHVAEError(() => acc.update([1, 2], [0, 2]), 'ERR_HVAE_OPTION');
    assertHVAEError(() => acc.update([1, 2], [0, -1]), 'ERR_HVAE_OPTION');
    assertHVAEError(() => acc.update([1, 2], 'ood' as never), 'ERR_HVAE_OPTION');
    assertHVAEError(() => acc.update([1, NaN], [0, 1]), 'ERR_HVAE_NONFINITE');
    assertHVAEError(() => acc.update([Infinity], true), 'ERR_HVAE_NONFINITE');
    assert.equal(acc.nIn, 1);
    assert.equal(acc.nOut, 1);
    assert.equal(acc.compute().auroc, 1);
    acc.reset();
    assertHVAEError(() => acc.compute(), 'ERR_HVAE_OPTION');
    acc.update([1, 2], false);
    assertHVAEError(() => acc.compute(), 'ERR_HVAE_OPTION');
    acc.reset().update([1, 2], true);
    assertHVAEError(() => acc.compute(), 'ERR_HVAE_OPTION');
  });
});

describe('metrics: 10^6 vs 10^6 scores', () => {
  it('oodMetrics completes and matches the rank-based AUROC (with many ties)', () => {
    const rand = rng(42);
    const n = 1_000_000;
    // Quantized to 1e-3 so there are many cross-class ties.
    const sIn = normals(n, 0, 1, rand, 1e-3);
    const sOut = normals(n, 0.5, 1.2, rand, 1e-3);
    const t0 = process.hrtime.bigint();
    const m = oodMetrics(sIn, sOut);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`      oodMetrics on 1e6 + 1e6 float64 scores: ${ms.toFixed(0)} ms`);
    const t1 = process.hrtime.bigint();
    const acc = new OODMetricAccumulator();
    for (let i = 0; i < n; i += 100_000) {
      acc.update(sIn.subarray(i, i + 100_000), false);
      acc.update(sOut.subarray(i, i + 100_000), true);
    }
    const mAcc = acc.compute();
    console.log(`      accumulator (20 batches + compute): ${(Number(process.hrtime.bigint() - t1) / 1e6).toFixed(0)} ms`);
    assert.deepEqual(mAcc, m);
    assert.equal(m.nIn, n);
    assert.equal(m.nOut, n);
    close(m.auroc, rankAuroc(sIn, sOut), 'auroc vs ranks', 1e-12);
    assert.ok(m.auroc > 0.55 && m.auroc < 0.75, `auroc ${m.auroc}`);
    for (const v of [m.auprc, m.auprIn, m.fpr80, m.fpr95]) assert.ok(v > 0 && v < 1);
    assert.ok(m.fpr95 >= m.fpr80);
    assert.equal(m.auprc, m.auprOut);
  });
});
