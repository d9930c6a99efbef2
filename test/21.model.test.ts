/**
 * The model beyond the fixtures: the bounds' internal consistency (shared vs separate computation, chunking,
 * L<l), the paper-intent options, generation, and the two transposed-convolution paths.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { HVAE, readSafetensors, ImageBatch } from 'hvae-native';
import { loadNative } from '../lib/native.js';
import { FIXTURES } from './setup.js';

type T = { data: Float32Array; shape: number[] };
const noiseFile = () => readSafetensors(path.join(FIXTURES, 'grey', 'noise.safetensors')).tensors;
function batchOf(name: string, n = 64): ImageBatch {
  const t = readSafetensors(path.join(FIXTURES, 'grey', 'inputs.safetensors')).tensors.get(name)!;
  return { data: (t.data as Float32Array).subarray(0, n * 784), shape: [n, 1, 28, 28] };
}
function twice(t: T): T {
  const data = new Float32Array(t.data.length * 2);
  data.set(t.data);
  data.set(t.data, t.data.length);
  return { data, shape: [t.shape[0] * 2, ...t.shape.slice(1)] };
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('21 model: bounds, options, generation', function () {
  this.timeout(300000);
  let model: HVAE;
  before(() => { model = HVAE.load(path.join(FIXTURES, 'grey', 'weights.safetensors'), { config: 'fashionmnist' }); });
  after(() => model.dispose());

  it('L<L is the ELBO (same noise), and LLR>k<l = L<l - L>k', async function () {
    const n = noiseFile();
    const e = (k: string) => n.get(k) as T;
    const x = batchOf('x_fashion');
    // Rows per layer: the groups continuing from the layer below, then those joining. Layer 1: [ELBO, L<3],
    // layers 2 and 3: [ELBO, L<3, L>1]. The same noise for the ELBO and L<3 makes them identical.
    const s = await model.scores(x, { k: [1], belowL: [3], _noise: [twice(e('eps.elbo.z1')), cat3(e('eps.elbo.z2'), e('eps.elbo.z2'), e('eps.k1.z2')), cat3(e('eps.elbo.z3'), e('eps.elbo.z3'), e('eps.k1.z3'))] });
    assert.ok(maxAbsDiff(s.boundBelowL[3], s.elbo) < 1e-3);
    const d = s.llrAboveKBelowL['1,3'];
    for (let i = 0; i < d.length; i++) assert.equal(d[i], Math.fround(s.boundBelowL[3][i] - s.boundAboveK[1][i]));
    // L<1 keeps only z1 from the posterior: finite and below the ELBO on average for trained-ish weights.
    const t = await model.scores(x, { k: [], belowL: [1, 2] });
    for (const l of [1, 2]) for (const v of t.boundBelowL[l]) assert.ok(Number.isFinite(v));
  });

  it('L>L (all latents from the prior mode) is deterministic and independent of chunking', async function () {
    const x = batchOf('x_mnist', 16);
    const a = await model.scores(x, { k: [3], chunkRows: 1 });
    const b = await model.scores(x, { k: [3], chunkRows: 4096 });
    assert.ok(maxAbsDiff(a.boundAboveK[3], b.boundAboveK[3]) < 1e-3);
  });

  it('importance weighting: L^S is (statistically) at least the mean one-sample ELBO, and chunking does not bias it', async function () {
    const x = batchOf('x_fashion', 8);
    const s = await model.scores(x, { k: [], importanceSamples: 32, returnElboSamples: true, chunkRows: 40 });
    for (let i = 0; i < 8; i++) {
      let mean = 0;
      for (let j = 0; j < 32; j++) mean += s.elboSamples!.data[j * 8 + i] / 32;
      assert.ok(s.elbo[i] >= mean - 1e-3, `L^S ${s.elbo[i]} < mean ELBO ${mean}`);
    }
  });

  it('S above chunkRows: the samples run in passes, combined exactly (L^S, L>0^S\', log-likelihood and KL)', async function () {
    const x = batchOf('x_fashion', 4);
    const B = 4, S = 32, S2 = 12;
    const lme = (a: number[]): number => { const mx = Math.max(...a); return Math.log(a.reduce((t, v) => t + Math.exp(v - mx), 0) / a.length + 1e-8) + mx; };
    // 32 + 12 + 12 rows per image against a budget of 8: six passes per image.
    const s = await model.scores(x, { k: [0, 1, 2], importanceSamples: S, importanceSamplesAboveK: S2, returnElboSamples: true, chunkRows: 8 });
    assert.deepEqual(s.elboSamples!.shape, [S, B]);
    for (let i = 0; i < B; i++) {
      const col = Array.from({ length: S }, (_, j) => s.elboSamples!.data[j * B + i]);
      assert.ok(Math.abs(lme(col) - s.elbo[i]) < 1e-3, `L^S ${s.elbo[i]} against ${lme(col)}`);
      assert.ok(Math.abs(lme(col.slice(0, S2)) - s.boundAboveK[0][i]) < 1e-3, 'L>0 is the log-mean-exp of the first S\' samples');
      const mean = col.reduce((t, v) => t + v, 0) / S;
      assert.ok(Math.abs(mean - (s.logLikelihood[i] - s.kl.reduce((t, k) => t + k[i], 0))) < 1e-3, 'mean ELBO sample = log p(x|z) - KL');
      for (const k of [1, 2]) assert.ok(Number.isFinite(s.boundAboveK[k][i]));
    }
  });

  it('chunkRows bounds memory at large S (one image\'s samples no longer run at once)', function () {
    // A fresh process: peak resident memory over one call at S = 400, 2 images, chunkRows 16. Measured 44 MB of
    // growth against 674 MB before samples were split (all 402 rows of an image at once), and 2.6x faster.
    const probe = `
      const hv = require('hvae-native');
      const fs = require('node:fs');
      const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
      (async () => {
        const m = hv.HVAE.load(${JSON.stringify(path.join(FIXTURES, 'grey', 'weights.safetensors'))}, { config: 'fashionmnist' });
        const t = hv.readSafetensors(${JSON.stringify(path.join(FIXTURES, 'grey', 'inputs.safetensors'))}).tensors.get('x_fashion');
        const x = { data: t.data.subarray(0, 2 * 784), shape: [2, 1, 28, 28] };
        await m.scores(x, { k: [0, 1, 2], importanceSamples: 4 });
        const before = hwm();
        const s = await m.scores(x, { k: [0, 1, 2], importanceSamples: 400, chunkRows: 16 });
        console.log(JSON.stringify({ growthMB: hwm() - before, finite: s.elbo.every(Number.isFinite) }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', env: process.env });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { growthMB: number; finite: boolean };
    assert.ok(out.finite);
    assert.ok(out.growthMB < 200, `peak memory grew by ${out.growthMB.toFixed(0)} MB`);
  });

  it("lowerLatents 'sample' (the paper's expectation) differs from the mode rule but stays finite", async function () {
    const x = batchOf('x_fashion', 16);
    const a = await model.scores(x, { k: [1, 2] });
    const b = await model.scores(x, { k: [1, 2], lowerLatents: 'sample' });
    assert.ok(maxAbsDiff(a.boundAboveK[1], b.boundAboveK[1]) > 1e-2);
    for (const v of b.llr[2]) assert.ok(Number.isFinite(v));
  });

  it("skipConnections 'paper' adds the 1x1 skips the reference drops, and trains", async function () {
    const ref = HVAE.create({ preset: 'fashionmnist' });
    const paper = HVAE.create({ preset: 'fashionmnist', skipConnections: 'paper' });
    const extra = paper.parameters().filter((p) => !ref.parameters().some((q) => q.name === p.name));
    // Encoder stages 2 and 3 (3 blocks each) and generative block 0 of stages 1 and 2: 8 skips x (v, g, b).
    assert.equal(extra.length, 24);
    assert.ok(extra.every((p) => /aux_op\.conv\.(weight_v|weight_g|bias)$/.test(p.name)));
    const data = new Uint8Array(16 * 784).fill(70);
    const r = await paper.trainStep({ data, shape: [16, 1, 28, 28] });
    assert.ok(Number.isFinite(r.lossMean));
    ref.dispose();
    paper.dispose();
  });

  it("live skips with gain 0 compute the reference's bounds, and a nonzero gain changes them (bench/paper/branch.js)", async function () {
    const x = batchOf('x_fashion', 16);
    const refState = model.getState();
    const paper = HVAE.create({ preset: 'fashionmnist', skipConnections: 'paper' });
    const merged: Record<string, T> = {};
    for (const [name, t] of Object.entries(paper.getState())) {
      merged[name] = refState[name] ?? (/weight_v$/.test(name) ? t : { shape: t.shape, data: new Float32Array(t.data.length) });
    }
    paper.setState(merged);
    const ks = [0, 1, 2];
    model.seed(11);
    paper.seed(11);
    const a = await model.scores(x, { k: ks, importanceSamples: 2 });
    const b = await paper.scores(x, { k: ks, importanceSamples: 2 });
    assert.deepEqual(b.elbo, a.elbo);
    for (const k of ks) assert.deepEqual(b.boundAboveK[k], a.boundAboveK[k]);
    // A gain of 0.5 on every skip: the skips are live in scoring, so the bounds move.
    for (const name of Object.keys(merged)) if (/aux_op\.conv\.weight_g$/.test(name)) merged[name].data.fill(0.5);
    paper.setState(merged);
    paper.seed(11);
    const c = await paper.scores(x, { k: ks, importanceSamples: 2 });
    assert.ok(maxAbsDiff(c.elbo, a.elbo) > 1e-2);
    paper.dispose();
  });

  it('generation: prior samples, reconstructions and latent reconstructions in [0, 1]', async function () {
    const x = batchOf('x_mnist', 5);
    for (const g of [await model.generate({ n: 3 }), await model.reconstruct(x), await model.reconstruct(x, 2, { posteriorMean: true }), await model.generate({ n: 2, sampleOutput: true })]) {
      assert.equal(g.shape[1], 1);
      for (const v of g.data) assert.ok(v >= 0 && v <= 1);
    }
    const a = await model.reconstruct(x, 0, { posteriorMean: true });
    const b = await model.reconstruct(x, 0, { posteriorMean: true });
    assert.deepEqual(a.data, b.data, 'posterior-mean reconstructions are deterministic');
    const c = await model.reconstruct(x, 3, { posteriorMean: true });
    assert.ok(maxAbsDiff(a.data, c.data) > 0.05, 'k = L ignores the image');
  });

  it('the subpixel and native transposed convolutions agree', async function () {
    const addon = loadNative();
    const x = batchOf('x_fashion', 8);
    const zero = [{ data: new Float32Array(8 * 8 * 14 * 14), shape: [8, 8, 14, 14] }, { data: new Float32Array(8 * 16), shape: [8, 16] }, { data: new Float32Array(8 * 8), shape: [8, 8] }];
    try {
      addon.setConvTranspose('native');
      const a = await model.scores(x, { k: [], _noise: zero });
      addon.setConvTranspose('subpixel');
      const b = await model.scores(x, { k: [], _noise: zero });
      assert.ok(maxAbsDiff(a.elbo, b.elbo) < 1e-3, `${maxAbsDiff(a.elbo, b.elbo)}`);
    } finally {
      addon.setConvTranspose('auto');
    }
  });
});

function cat3(a: T, b: T, c: T): T {
  const data = new Float32Array(a.data.length + b.data.length + c.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  data.set(c.data, a.data.length + b.data.length);
  return { data, shape: [a.shape[0] + b.shape[0] + c.shape[0], ...a.shape.slice(1)] };
}
