#!/usr/bin/env node
'use strict';
// What `precision: 'bfloat16'` costs in accuracy and gains in speed, on the bundled model and the main job's data.
//
// Three evaluations of the paper's protocol (FashionMNIST test against MNIST and notMNIST, a seeded sample of
// --limit images per set, S = 1, k = 0, 1, 2), with the model's random stream seeded before each:
//   float32 seed 0   the reference;
//   bfloat16 seed 0  the same binarisation and noise draws, bfloat16 layers: the change due to precision alone;
//   float32 seed 1   other draws, float32: the Monte Carlo spread of the same AUROCs, for scale.
// Prints per score the AUROC of each and the changes, the per-image score differences (bfloat16 - float32, same
// draws) and the images/s of each precision; writes everything to --out (JSON).
//
// Then the same per-image differences against what eager PyTorch offers for reduced precision, torch.autocast
// (bench/reference/bench_extra.py --task precision-error), both on the grey fixture weights and the first --fixture-images
// FashionMNIST test images, each side with its own seeded binarisation and the same draws for both precisions.
//
//   node bench/precision.js [--model models/fashionmnist.safetensors] [--limit 2000] [--threads N] [--out bench/precision.json]
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const hv = require('..');
const { spawnSync } = require('node:child_process');
const { openSource } = require('../lib/cli.js');

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const ROOT = path.resolve(__dirname, '..');
const modelFile = opt('model', path.join(ROOT, 'models', 'fashionmnist.safetensors'));
const limit = Number(opt('limit', '2000'));
const threads = Number(opt('threads', String(os.cpus().length)));
const outFile = opt('out', path.join(__dirname, 'precision.json'));
const fixtureImages = Number(opt('fixture-images', '500'));
const SHARED = process.env.HVAE_SHARED || path.resolve(ROOT, '..', 'shared');
const FASHION_TEST = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz';

const stats = (a) => {
  const s = Float64Array.from(a, Math.abs).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { medianAbs: q(0.5), p99Abs: q(0.99), maxAbs: s[s.length - 1] };
};

(async () => {
  hv.setNumThreads(threads);
  const model = hv.HVAE.load(modelFile);
  if (!model.supportsBFloat16) {
    console.error('this CPU has no AVX-512 BF16 or AMX: bfloat16 scoring is not offered here');
    process.exit(2);
  }
  const id = await openSource('FashionMNIST:test');
  const ood = [await openSource('MNIST:test'), await openSource('notMNIST:test')];
  const runs = {};
  for (const [name, precision, seed] of [['float32 seed 0', 'float32', 0], ['bfloat16 seed 0', 'bfloat16', 0], ['float32 seed 1', 'float32', 1]]) {
    model.seed(seed);
    // Warm-up outside the timing (weight folding and casting happen once per precision).
    await model.scores({ data: new Uint8Array(8 * 784), shape: [8, 1, 28, 28] }, { precision });
    model.seed(seed);
    const t0 = process.hrtime.bigint();
    const report = await hv.evaluateOOD(model, { id, ood }, { k: [0, 1, 2], limit, seed: 0, precision });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const images = Object.values(report.scores).reduce((s, v) => s + v.elbo.length, 0);
    runs[name] = { precision, seed, report, seconds, imagesPerSecond: images / seconds };
    console.error(`${name}: ${images} images in ${seconds.toFixed(1)} s (${(images / seconds).toFixed(1)} images/s)`);
  }
  const [a, b, c] = Object.values(runs);
  const rows = [];
  for (const row of a.report.rows) {
    const find = (r) => r.report.rows.find((x) => x.ood === row.ood && x.score === row.score).auroc;
    rows.push({ ood: row.ood, score: row.score, float32: row.auroc, bfloat16: find(b), float32Seed1: find(c),
      precisionChange: find(b) - row.auroc, seedChange: find(c) - row.auroc });
  }
  const diffs = {};
  for (const set of Object.keys(a.report.scores)) {
    const u = a.report.scores[set], v = b.report.scores[set];
    const d = (x, y) => stats(Float64Array.from(x, (xi, i) => y[i] - xi));
    diffs[set] = { elbo: d(u.elbo, v.elbo), llr1: d(u.llr[1], v.llr[1]), llr2: d(u.llr[2], v.llr[2]),
      meanElbo: u.elbo.reduce((s, x) => s + x, 0) / u.elbo.length };
  }
  const f = (x) => x.toFixed(4);
  const sgn = (x) => (x >= 0 ? '+' : '') + x.toFixed(4);
  console.log(`model ${path.relative(ROOT, modelFile)}, ${limit} images per set, S = 1, ${threads} threads, LibTorch ${hv.versions.libtorch}`);
  console.log('\n| OOD set | score | AUROC float32 | AUROC bfloat16 | change (precision) | AUROC float32, seed 1 | change (seed) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.ood} | ${r.score} | ${f(r.float32)} | ${f(r.bfloat16)} | ${sgn(r.precisionChange)} | ${f(r.float32Seed1)} | ${sgn(r.seedChange)} |`);
  console.log('\n| set | mean ELBO (nats) | ELBO abs diff median / p99 / max | LLR>1 abs diff median / p99 / max | LLR>2 abs diff median / p99 / max |');
  console.log('|---|---|---|---|---|');
  const g = (s) => `${s.medianAbs.toFixed(2)} / ${s.p99Abs.toFixed(2)} / ${s.maxAbs.toFixed(2)}`;
  for (const [set, d] of Object.entries(diffs)) console.log(`| ${set} | ${d.meanElbo.toFixed(1)} | ${g(d.elbo)} | ${g(d.llr1)} | ${g(d.llr2)} |`);
  console.log(`\nimages/s (whole protocol, data reading included): float32 ${a.imagesPerSecond.toFixed(1)}, bfloat16 ${b.imagesPerSecond.toFixed(1)} (${(b.imagesPerSecond / a.imagesPerSecond).toFixed(2)}x)`);
  model.dispose();

  // Like for like with PyTorch's autocast on the fixture weights.
  const weights = path.join(SHARED, 'fixtures', 'grey', 'weights.safetensors');
  const fx = hv.HVAE.load(weights, { config: 'fashionmnist' });
  const ds = await hv.loadDataset('FashionMNIST', { split: 'test' });
  const imgs = (await ds.read(Array.from({ length: fixtureImages }, (_, i) => i))).images;
  const one = async (precision) => { fx.seed(0); return fx.scores(imgs, { k: [1, 2], precision }); };
  const u = await one('float32'), v = await one('bfloat16');
  const stat3 = (x, y) => { const s = stats(Float64Array.from(x, (xi, i) => y[i] - xi)); return { median: s.medianAbs, p99: s.p99Abs, max: s.maxAbs }; };
  const oursFx = { elbo: stat3(u.elbo, v.elbo), llr: { 1: stat3(u.llr[1], v.llr[1]), 2: stat3(u.llr[2], v.llr[2]) },
    meanElbo: u.elbo.reduce((s2, x) => s2 + x, 0) / u.elbo.length };
  fx.dispose();
  const py = spawnSync(process.env.HVAE_PYTHON || '/usr/bin/python3', [path.join(__dirname, 'reference', 'bench_extra.py'), '--task', 'precision-error',
    '--weights', weights, '--input', FASHION_TEST, '--limit', String(fixtureImages), '--threads', String(threads), '--json'], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`bench_extra.py precision-error failed:\n${py.stderr}`);
  const torchFx = JSON.parse(py.stdout.trim().split('\n').pop());
  const h = (s2) => `${s2.median.toFixed(2)} / ${s2.p99.toFixed(2)} / ${s2.max.toFixed(2)}`;
  console.log(`\nGrey fixture weights, first ${fixtureImages} FashionMNIST test images: |bfloat16 - float32| in nats, median / p99 / max`);
  console.log('\n| implementation | mean ELBO | ELBO | LLR>1 | LLR>2 |');
  console.log('|---|---|---|---|---|');
  console.log(`| hvae-native precision 'bfloat16' (layers in bfloat16, float32 between blocks) | ${oursFx.meanElbo.toFixed(1)} | ${h(oursFx.elbo)} | ${h(oursFx.llr[1])} | ${h(oursFx.llr[2])} |`);
  console.log(`| PyTorch ${torchFx.torch} torch.autocast(bfloat16), optimised reference | ${torchFx.mean_elbo.toFixed(1)} | ${h(torchFx.elbo)} | ${h(torchFx.llr[1])} | ${h(torchFx.llr[2])} |`);

  fs.writeFileSync(outFile, JSON.stringify({
    date: new Date().toISOString(), model: path.relative(ROOT, modelFile), limit, threads, libtorch: hv.versions.libtorch,
    cpu: os.cpus()[0].model, rows, diffs, fixture: { images: fixtureImages, ours: oursFx, pytorchAutocast: torchFx },
    speed: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, { seconds: r.seconds, imagesPerSecond: r.imagesPerSecond }])),
  }, null, 1));
  console.error(`written ${path.relative(process.cwd(), outFile)}`);
})().catch((e) => { console.error(e); process.exit(1); });
