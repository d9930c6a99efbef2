/**
 * The evaluation protocol and the label-free detector: the pipeline on a tiny model (not its quality), the
 * equal-size pairing, the table, and the detector's calibration and decisions on controlled inputs.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { HVAE } from 'hvae-native';
import { evaluateOOD, reportMarkdown, reportJson, equalSizePairs, scoreDataset } from '../lib/evaluate.js';
import { OODDetector, saveWithDetector, loadDetector } from '../lib/detector.js';
import { loadDataset } from '../lib/data/datasets.js';
import { ArrayDataset, Dataset, subset } from '../lib/data/stream.js';
import { Rng } from '../lib/data/random.js';
import { tmpDir } from './setup.js';

function gaussian(n: number, mean: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng.nextFloat(), 1e-12);
    a[i] = mean + Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat());
  }
  return a;
}

describe('60 evaluation protocol and detector', function () {
  this.timeout(600000);
  let model: HVAE;
  let fashionTest: Dataset;
  let fashionTrain: Dataset;
  let mnist: Dataset;

  before(async function () {
    model = HVAE.create({ preset: 'fashionmnist', channels: 8, seed: 1 });
    fashionTrain = await loadDataset('FashionMNIST', { split: 'train' });
    fashionTest = await loadDataset('FashionMNIST', { split: 'test' });
    mnist = await loadDataset('MNIST', { split: 'test' });
    const b = await fashionTrain.read(Array.from({ length: 128 }, (_, i) => i));
    await model.initialize(b.images);
  });
  after(() => model.dispose());

  it('equal-size pairing: all of the smaller set, a seeded sample of the larger', function () {
    const p = equalSizePairs(10, 4, 's');
    assert.equal(p.reference.length, 4);
    assert.deepEqual(Array.from(p.ood), [0, 1, 2, 3]);
    assert.equal(new Set(p.reference).size, 4);
    assert.deepEqual(equalSizePairs(10, 4, 's'), p, 'seeded');
    assert.notDeepEqual(Array.from(equalSizePairs(10, 4, 't').reference), Array.from(p.reference));
  });

  it('scores sets, pairs them and builds the Table-7 layout, with an ID-vs-ID row near 0.5', async function () {
    const r = await evaluateOOD(model, { id: fashionTest, ood: [mnist], idTrain: fashionTrain }, { limit: 150, k: [0, 1, 2], seed: 3 });
    const names = [...new Set(r.rows.map((x) => x.ood))];
    assert.deepEqual(names, ['MNIST test', 'FashionMNIST train']);
    assert.deepEqual(r.rows.filter((x) => x.ood === 'MNIST test').map((x) => x.score), ['L>0', 'L>1', 'L>2', 'LLR>1', 'LLR>2']);
    for (const row of r.rows) {
      assert.equal(row.nIn, 150);
      assert.equal(row.nOut, 150);
      for (const v of [row.auroc, row.auprc, row.fpr80, row.fpr95]) assert.ok(v >= 0 && v <= 1);
    }
    const idRows = r.rows.filter((x) => x.ood === 'FashionMNIST train');
    for (const row of idRows) assert.ok(Math.abs(row.auroc - 0.5) < 0.12, `ID vs ID ${row.score}: AUROC ${row.auroc}`);
    assert.ok(r.bestK['MNIST test'].k >= 1);
    const md = reportMarkdown(r);
    assert.match(md, /\| OOD set \| score \| AUROC \| AUPRC \| FPR80 \| FPR95 \| n \(ID \/ OOD\) \|/);
    assert.match(md, /\| MNIST test \| LLR>1 \| 0\.\d{3} \|/);
    const json = JSON.parse(JSON.stringify(reportJson(r))) as { rows: unknown[] };
    assert.equal(json.rows.length, r.rows.length);
  });

  it('the same weights and seed give the same report whatever the model drew before; another seed changes the draws', async function () {
    // Whole small sets (no subsampling), so only the model's draws (binarisation, posterior samples) can differ.
    const idSet = subset(fashionTest, Int32Array.from({ length: 40 }, (_, i) => i), 'F40');
    const oodSet = subset(mnist, Int32Array.from({ length: 40 }, (_, i) => i), 'M40');
    const opts = { k: [0, 1, 2], seed: 4, batchSize: 20 };
    const a = await evaluateOOD(model, { id: idSet, ood: [oodSet] }, opts);
    const b0 = await mnist.read(Array.from({ length: 16 }, (_, i) => i));
    await model.scores(b0.images, { k: [0, 1, 2] }); // advances the model's generator
    const b = await evaluateOOD(model, { id: idSet, ood: [oodSet] }, opts);
    for (const set of ['F40', 'M40']) {
      assert.deepEqual(Array.from(b.scores[set].elbo), Array.from(a.scores[set].elbo), set);
      assert.deepEqual(Array.from(b.scores[set].llr[2]), Array.from(a.scores[set].llr[2]), set);
    }
    assert.deepEqual(b.rows, a.rows);
    const c = await evaluateOOD(model, { id: idSet, ood: [oodSet] }, { ...opts, seed: 5 });
    assert.deepEqual(Array.from(c.scores.M40.indices), Array.from(a.scores.M40.indices));
    assert.notDeepEqual(Array.from(c.scores.M40.elbo), Array.from(a.scores.M40.elbo));
    await assert.rejects(evaluateOOD(model, { id: idSet, ood: [oodSet] }, { ...opts, seed: -1 }), { code: 'ERR_HVAE_OPTION' });
  });

  it('scoreDataset streams a random subset and keeps the dataset indices', async function () {
    const s = await scoreDataset(model, mnist, { limit: 37, k: [1], batchSize: 10, seed: 5 });
    assert.equal(s.elbo.length, 37);
    assert.equal(s.indices.length, 37);
    assert.equal(new Set(s.indices).size, 37);
    assert.equal(s.llr[1].length, 37);
  });

  it('the detector on controlled LLRs: ~5% of fresh ID flagged, shifted k=2 flagged with k = 2', async function () {
    const rng = new Rng(12);
    // A stand-in model whose scores() returns controlled LLRs: ID ~ N(0,1) for every k.
    let next: Record<number, Float32Array> = {};
    const fake = {
      numLayers: 3,
      scores: async (b: { shape: number[] }) => {
        const n = b.shape[0];
        const out: Record<number, Float32Array> = {};
        for (const k of [1, 2]) out[k] = next[k]?.length === n ? next[k] : gaussian(n, 0, rng);
        next = {};
        return { llr: out };
      },
    } as unknown as HVAE;
    const det = new OODDetector(fake, { falsePositiveRate: 0.05, batchSize: 4000 });
    assert.deepEqual(det.ks, [1, 2]);
    await det.fit({ data: new Uint8Array(4000 * 784), shape: [4000, 1, 28, 28] });
    assert.equal(det.fitted, true);
    const fresh = await det.predict({ data: new Uint8Array(4000 * 784), shape: [4000, 1, 28, 28] });
    const fpr = fresh.isOOD.reduce((a, v) => a + v, 0) / 4000;
    assert.ok(fpr > 0.03 && fpr < 0.075, `false-positive rate ${fpr}`);
    next = { 1: gaussian(500, 0, rng), 2: gaussian(500, 6, rng) };
    const shifted = await det.predict({ data: new Uint8Array(500 * 784), shape: [500, 1, 28, 28] });
    const tpr = shifted.isOOD.reduce((a, v) => a + v, 0) / 500;
    assert.ok(tpr > 0.95, `detection rate ${tpr}`);
    const k2 = shifted.k.reduce((a, v) => a + (v === 2 ? 1 : 0), 0) / 500;
    assert.ok(k2 > 0.95, `the deviating k should be 2 (${k2})`);
    // Round trip of the calibration.
    const copy = OODDetector.fromJSON(fake, JSON.parse(JSON.stringify(det.toJSON())));
    const a = det.scoreLlr({ 1: Float32Array.of(0, 3), 2: Float32Array.of(4, 0) });
    const b = copy.scoreLlr({ 1: Float32Array.of(0, 3), 2: Float32Array.of(4, 0) });
    assert.deepEqual(a.score, b.score);
    assert.deepEqual(Array.from(a.k), [2, 1]);
  });

  it('the detector with a real model: fit on ID validation, predict on a dataset stream, saved with the model', async function () {
    const val = subset(fashionTrain, Array.from({ length: 120 }, (_, i) => 59000 + i), 'FashionMNIST validation');
    const det = await new OODDetector(model, { batchSize: 60 }).fit(val);
    const p = await det.predict(subset(mnist, Array.from({ length: 30 }, (_, i) => i)));
    assert.equal(p.score.length, 30);
    assert.equal(p.isOOD.length, 30);
    const file = path.join(tmpDir(), 'with-detector.safetensors');
    saveWithDetector(model, det, file);
    const m2 = HVAE.load(file);
    const det2 = loadDetector(m2, file);
    assert.equal(det2.toJSON().threshold, det.toJSON().threshold);
    m2.dispose();
    const tiny = new ArrayDataset({ name: 'tiny', images: new Uint8Array(5 * 784), shape: [1, 28, 28] });
    await assert.rejects(new OODDetector(model).fit(tiny), { code: 'ERR_HVAE_DATA' });
  });
});
