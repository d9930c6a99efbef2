#!/usr/bin/env node
'use strict';
// npm run bench: hvae-native against the PyTorch reference (bench/reference, both flavours: the official recipe
// and the best eager PyTorch), same weights, batch size, device and thread count, in the same run. Ours scores
// FashionMNIST test images; the reference a seeded random binary batch of the same shape (bench_ref.py without
// --input): the cost of these models does not depend on the pixel values.
//   (a) the full OOD scoring of a batch: L^S plus L>k for k = 0, 1, 2, at S = 1 and S = 64 (fashionmnist);
//   (b) one training step at batch 128;
//   (c) scoring a dataset end to end from files (read, decode, score, write): images/s and peak memory;
//   (d) (a) and (b) for the cifar10 preset.
// Ours: Benchmark.js (deferred) for (a), (b), (d); a plain timed harness for (c). Median of >= 5 runs after warm-up.
//
//   node bench/run.js [--device cpu|cuda] [--threads N] [--only a,b,c,d] [--quick] [--out results.json] [--md bench/RESULTS.md] [--ref-blas openblas|system] [--no-bf16]
//   node bench/run.js --from-json results.json [--md bench/RESULTS.md]   (the table of a saved run; measures nothing)
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Benchmark = require('benchmark');
const hv = require('..');
const { loadNative } = require('../lib/native.js');
const { modelFlops, scoringFlops } = require('./flops.js');

const ROOT = path.resolve(__dirname, '..');
const SHARED = process.env.HVAE_SHARED || path.resolve(ROOT, '..', 'shared');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const flag = (name) => args.includes(`--${name}`);
const device = opt('device', 'cpu');
const threads = Number(opt('threads', device === 'cpu' ? String(os.cpus().length) : '4'));
const only = new Set((opt('only', 'a,b,c,d')).split(','));
const quick = flag('quick');
// Also time precision 'bfloat16' scoring and training where the device runs it natively (CUDA, or a CPU with AVX-512 BF16 / AMX).
const withBf16 = !flag('no-bf16');
const REPEATS = Math.max(5, Number(opt('repeats', '5')));
const PY = process.env.HVAE_PYTHON || '/usr/bin/python3';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hvae-bench-'));

hv.setNumThreads(threads);
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const log = (...m) => process.stderr.write(`${m.join(' ')}\n`);

// The reference's BLAS. Debian's python3-torch resolves libblas.so.3 to whatever the system's alternative is, here
// the unoptimised Netlib BLAS, which PyTorch's CPU ConvTranspose2d (im2col + sgemm) and the dense layers go through:
// it makes the official recipe ~2.4x slower than any real PyTorch install (pip wheels bundle MKL or OpenBLAS). By
// default the reference therefore runs under OpenBLAS with `threads` threads (bench_ref.py --blas auto re-executes
// under Debian's libopenblas0, extracted to ~/.cache/hvae-ref when not installed); `--ref-blas system` restores the
// Netlib baseline. The BLAS each reference run used is recorded in the results.
const refBlas = opt('ref-blas', 'openblas');
const blasSeen = new Set();
function py(argv, script = 'bench_ref.py') {
  const r = spawnSync(PY, [path.join(__dirname, 'reference', script), ...argv, '--threads', String(threads), '--json', ...(script === 'bench_ref.py' ? ['--blas', refBlas === 'system' ? 'system' : 'auto'] : []),
    ...(device !== 'cpu' ? ['--device', device] : [])], { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? String(threads) } });
  if (r.status !== 0) throw new Error(`bench_ref.py ${argv.join(' ')} failed:\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]);
  if (out.blas) blasSeen.add(out.blas);
  return out;
}

/** Runs an async function with Benchmark.js (deferred), at least `REPEATS` samples; returns seconds per call (median). */
function bench(name, fn) {
  return new Promise((resolve, reject) => {
    const b = new Benchmark(name, {
      defer: true,
      minSamples: REPEATS,
      maxTime: 1e-3, // stop as soon as minSamples is reached: each call takes seconds
      initCount: 1,
      fn(deferred) { fn().then(() => deferred.resolve(), reject); },
      onError: (e) => reject(e.target.error),
      onComplete() { resolve({ median: median(this.stats.sample), samples: this.stats.sample.slice() }); },
    });
    fn().then(() => b.run({ async: true }), reject); // warm-up call
  });
}

function imagesOf(n, shape, seed) {
  const data = new Uint8Array(n * shape[0] * shape[1] * shape[2]);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; data[i] = s & 255; }
  return { data, shape: [n, ...shape] };
}

/** A realistic batch: FashionMNIST test images (uint8) for the grey model; random pixels for CIFAR shapes. */
async function batchFor(preset, n) {
  if (preset === 'fashionmnist') {
    const ds = await hv.loadDataset('FashionMNIST', { split: 'test' });
    const b = await ds.read(Array.from({ length: n }, (_, i) => i % ds.length));
    return b.images;
  }
  return imagesOf(n, [3, 32, 32], 7);
}

/** Both sides use the same weights: the grey fixture for fashionmnist, a reference-initialised model for cifar10. */
function weightsFor(preset) {
  if (preset === 'fashionmnist') return path.join(SHARED, 'fixtures', 'grey', 'weights.safetensors');
  const file = path.join(tmp, `${preset}.safetensors`);
  if (!fs.existsSync(file)) py(['--preset', preset, '--save-weights', file, '--repeats', '0', '--warmup', '0', '--batch', '2']);
  return file;
}

async function convRate() {
  // The device's convolution rate on the model's dominant convolution (64 -> 64, 5x5, 28x28, batch 128), measured
  // with the same LibTorch kernels through PyTorch.
  return py(['--task', 'convrate'], 'bench_extra.py').gflops;
}

async function scoring(preset, S, batch, rows) {
  const weights = weightsFor(preset);
  const model = hv.HVAE.load(weights, { config: preset, device });
  const images = await batchFor(preset, batch);
  const ks = [0, 1, 2];
  const ours = await bench(`hvae-native ${preset} S=${S}`, () => model.scores(images, { k: ks, importanceSamples: S }));
  const bf16 = withBf16 && model.supportsBFloat16
    ? await bench(`hvae-native ${preset} S=${S} bfloat16`, () => model.scores(images, { k: ks, importanceSamples: S, precision: 'bfloat16' }))
    : undefined;
  model.dispose();
  // The optimised flavour chunks its stacked batch to a memory budget (1 GiB by default, which on CPU never splits
  // these batches); on a GPU it gets 16 GiB, so that it runs the whole batch at once as ours and the recipe do.
  const common = ['--preset', preset, '--task', 'score', '--batch', String(batch), '--samples', String(S), '--ks', '0,1,2', '--weights', weights, '--repeats', String(REPEATS), '--warmup', '1',
    ...(device !== 'cpu' ? ['--mem-budget-mb', '16384'] : [])];
  const official = py([...common, '--flavour', 'official']);
  const optimized = py([...common, '--flavour', 'optimized']);
  const f = scoringFlops(hv.resolveConfig({ preset }), S, ks);
  const r = {
    task: `(${preset === 'fashionmnist' ? 'a' : 'd'}) scoring, L^S + L>k for k = 0,1,2`, preset, S, batch,
    oursImagesPerS: batch / ours.median, officialImagesPerS: official.images_per_s_median, optimizedImagesPerS: optimized.images_per_s_median,
    flopsPerImageOurs: f.ours, flopsPerImageOfficial: f.official,
  };
  r.vsOfficial = r.oursImagesPerS / r.officialImagesPerS;
  r.vsOptimized = r.oursImagesPerS / r.optimizedImagesPerS;
  rows.push(r);
  log(JSON.stringify(r));
  if (bf16) {
    // Reduced precision: ours with precision 'bfloat16' against the same float32 official recipe, and against the
    // optimised reference under torch.autocast(bfloat16) (its reduced-precision counterpart; its error is of the
    // same order as ours, bench/precision.js and bench/RESULTS.md). No % of conv rate: the probe measures float32 convolutions.
    const optimizedBf16 = py([...common, '--flavour', 'optimized', '--precision', 'bfloat16']);
    const rb = {
      task: r.task, preset, S, batch, precision: 'bfloat16',
      oursImagesPerS: batch / bf16.median, officialImagesPerS: official.images_per_s_median, optimizedImagesPerS: optimizedBf16.images_per_s_median,
    };
    rb.vsOfficial = rb.oursImagesPerS / rb.officialImagesPerS;
    rb.vsOptimized = rb.oursImagesPerS / rb.optimizedImagesPerS;
    rows.push(rb);
    log(JSON.stringify(rb));
  }
}

async function training(preset, batch, rows) {
  const weights = weightsFor(preset);
  const model = hv.HVAE.load(weights, { config: preset, device });
  const images = await batchFor(preset, batch);
  // A tiny learning rate keeps the weights (and so the work) the same from step to step.
  const ours = await bench(`hvae-native train ${preset}`, () => model.trainStep(images, { lr: 1e-12, beta: 1, freeNats: 2 }));
  const bf16 = withBf16 && model.supportsBFloat16
    ? await bench(`hvae-native train ${preset} bfloat16`, () => model.trainStep(images, { lr: 1e-12, beta: 1, freeNats: 2, precision: 'bfloat16' }))
    : undefined;
  model.dispose();
  const common = ['--preset', preset, '--task', 'train', '--batch', String(batch), '--weights', weights, '--repeats', String(REPEATS), '--warmup', '1'];
  const official = py([...common, '--flavour', 'official']);
  const optimized = py([...common, '--flavour', 'optimized']);
  const fl = modelFlops(hv.resolveConfig({ preset })).total * 3; // forward + backward (about twice the forward)
  const r = {
    task: `(${preset === 'fashionmnist' ? 'b' : 'd'}) training step`, preset, batch,
    oursImagesPerS: batch / ours.median, officialImagesPerS: official.images_per_s_median, optimizedImagesPerS: optimized.images_per_s_median,
    flopsPerImageOurs: fl, flopsPerImageOfficial: fl,
  };
  r.vsOfficial = r.oursImagesPerS / r.officialImagesPerS;
  r.vsOptimized = r.oursImagesPerS / r.optimizedImagesPerS;
  rows.push(r);
  log(JSON.stringify(r));
  if (bf16) {
    // Mixed precision: ours against the float32 official recipe and against the optimised reference under autocast.
    const optimizedBf16 = py([...common, '--flavour', 'optimized', '--precision', 'bfloat16']);
    const rb = {
      task: r.task, preset, batch, precision: 'bfloat16',
      oursImagesPerS: batch / bf16.median, officialImagesPerS: official.images_per_s_median, optimizedImagesPerS: optimizedBf16.images_per_s_median,
    };
    rb.vsOfficial = rb.oursImagesPerS / rb.officialImagesPerS;
    rb.vsOptimized = rb.oursImagesPerS / rb.optimizedImagesPerS;
    rows.push(rb);
    log(JSON.stringify(rb));
  }
}

async function endToEnd(rows) {
  // (c) MNIST test from its IDX .gz file: read, decode, score (k = 0, 1, 2, S = 1), write one JSON line per image.
  // Both sides alike: the same images, batch and threads; the model loaded before the clock; one warm-up pass, then
  // REPEATS timed passes in one process; images/s from the median pass.
  const n = device === 'cpu' ? (quick ? 500 : 2000) : 10000;
  const batch = device === 'cpu' ? 250 : 2000;
  const repeats = quick ? 2 : REPEATS;
  const weights = weightsFor('fashionmnist');
  const r0 = spawnSync(process.execPath, [path.join(__dirname, 'e2e.js'), 'ours', weights, String(n), path.join(tmp, 'scores.jsonl'), device, String(threads), String(batch), String(repeats)], { encoding: 'utf8' });
  if (r0.status !== 0) throw new Error(r0.stderr);
  const ours = JSON.parse(r0.stdout.trim().split('\n').pop());
  const ref = py(['--task', 'e2e', '--weights', weights, '--input', path.join(SHARED, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'), '--limit', String(n), '--output', path.join(tmp, 'ref.jsonl'), '--repeats', String(repeats), '--batch', String(batch)], 'bench_extra.py');
  const r = { task: '(c) end to end: MNIST test IDX.gz -> scores.jsonl', preset: 'fashionmnist', images: ours.images, scoringBatch: batch, oursImagesPerS: ours.images / median(ours.runs), oursPeakRssMB: ours.maxRssMB, optimizedImagesPerS: ref.images_per_s_median, optimizedPeakRssMB: ref.peak_rss_mb };
  r.vsOptimized = r.oursImagesPerS / r.optimizedImagesPerS;
  rows.push(r);
  log(JSON.stringify(r));
}

function machine() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  const v = hv.versions;
  const py = spawnSync(PY, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
  if (py.status !== 0) {
    // Every row compares with the PyTorch reference: stop now with what to install, not at the first row.
    const why = (py.stderr || String(py.error ?? '')).trim().split('\n').pop() || `exit status ${py.status}`;
    console.error(`bench: the reference needs PyTorch and NumPy in ${PY} (${why}).\n` +
      'Install Debian\'s: sudo apt-get install -y --no-install-recommends python3-torch, or point HVAE_PYTHON at an interpreter that has both.');
    process.exit(2);
  }
  const pyv = py.stdout.trim();
  return { cpu, cores: os.cpus().length, memoryGB: Math.round(os.totalmem() / 2 ** 30), device, threads, libtorch: v.libtorch, flavour: v.flavour, cuda: v.cuda, pytorch: pyv, node: process.version, date: new Date().toISOString() };
}

function markdown(res) {
  const m = res.machine;
  const f = (v, d = 1) => (v === undefined || v === null ? '-' : Number(v).toFixed(d));
  const lines = [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB; device ${m.device}; ${m.threads} threads; LibTorch ${m.libtorch} (${m.flavour}) for hvae-native, PyTorch ${m.pytorch} for the reference; Node ${m.node}; ${m.date}.`,
    `Reference BLAS (dense layers; the official recipe's transposed convolutions): ${(res.referenceBlas ?? []).join(', ') || 'not reported'}.`,
    `Convolution rate of this device (64->64 5x5 at 28x28, batch 128): ${f(res.convGflops)} GFLOP/s.`,
    '',
    '| benchmark | batch | hvae-native img/s | official recipe img/s | optimised PyTorch img/s | vs official | vs optimised | % of conv rate (ours) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of res.rows) {
    const pct = r.flopsPerImageOurs && res.convGflops ? (100 * r.oursImagesPerS * r.flopsPerImageOurs / 1e9 / res.convGflops) : undefined;
    const name = `${r.task}${r.S !== undefined ? `, S = ${r.S}` : ''} (${r.preset})${r.precision ? `, **${r.precision}** (reference: official float32; optimised under autocast)` : ''}`;
    lines.push(`| ${name} | ${r.batch ?? r.images} | ${f(r.oursImagesPerS)}${r.oursPeakRssMB ? ` (peak ${f(r.oursPeakRssMB, 0)} MB)` : ''} | ${f(r.officialImagesPerS)} | ${f(r.optimizedImagesPerS)}${r.optimizedPeakRssMB ? ` (peak ${f(r.optimizedPeakRssMB, 0)} MB)` : ''} | ${r.vsOfficial ? `${f(r.vsOfficial, 2)}x` : '-'} | ${f(r.vsOptimized, 2)}x | ${pct === undefined ? '-' : f(pct, 0)} |`);
  }
  lines.push('', `Command: \`${res.command}\``, '',
    'Notes. Each figure is the median of at least 5 timed runs after a warm-up, both sides on the same weights, batch and',
    'thread count, in this one run. "% of conv rate" is FLOPs per image (bench/flops.js: the work our engine does, which',
    'for (a) shares the S samples and the k = 0 pass across k) times images/s over the measured convolution rate; the',
    'probe is a 64-channel 5x5 convolution, so the cifar10 preset\'s wider layers and the training step\'s large',
    'backward GEMMs can run above it (over 100%). (c) includes reading and decoding the IDX.gz file and writing one JSON',
    'line per image; the reference side is the optimised flavour in the same pipeline (bench/reference/bench_extra.py).',
    'Rows marked bfloat16 use `precision: \'bfloat16\'` (layers in bfloat16, float32 between them; in training on float32',
    'weights, gradients and Adam); "vs official" is',
    'against the float32 official recipe, "vs optimised" against the optimised reference under torch.autocast(bfloat16).',
    'What bfloat16 changes in the scores and AUROCs: `node bench/precision.js` (bench/precision-cpu.json).');
  return lines.join('\n');
}

function writeMarkdown(md) {
  const mdFile = opt('md');
  if (!mdFile) return;
  // Hand-written sections below the marker (other runs, analysis) are kept; the table above it is replaced.
  const MARK = '<!-- everything below is kept by bench/run.js -->';
  const old = fs.existsSync(mdFile) ? fs.readFileSync(mdFile, 'utf8') : '';
  const kept = old.includes(MARK) ? old.slice(old.indexOf(MARK)) : '';
  fs.writeFileSync(mdFile, `# Benchmark results\n\n${md}\n${kept ? `\n${kept}` : ''}`);
}

(async () => {
  const fromJson = opt('from-json');
  if (fromJson) {
    // The table of a saved run (--out), complete or cut short by a time box (the GPU machine's): nothing is measured.
    const md = markdown(JSON.parse(fs.readFileSync(fromJson, 'utf8')));
    console.log(md);
    writeMarkdown(md);
    fs.rmSync(tmp, { recursive: true, force: true });
    return;
  }
  const res = { machine: machine(), command: `node bench/run.js ${args.join(' ')}`.trim(), rows: [] };
  log(JSON.stringify(res.machine));
  const out = opt('out');
  // --out is rewritten after every row, so a run cut short by a time limit (the GPU machine's) keeps what it measured.
  const save = () => { if (out) fs.writeFileSync(out, `${JSON.stringify({ ...res, referenceBlas: [...blasSeen] }, null, 2)}\n`); };
  res.convGflops = await convRate();
  save();
  const b1 = device === 'cpu' ? (quick ? 50 : 100) : 2000;
  // On a GPU, S = 64 at batch 125: 8,000 rows a call for ours (batch 500 would have the official recipe's 64 x 6
  // passes run for about 10 s a call).
  const b64 = device === 'cpu' ? (quick ? 4 : 6) : 125;
  if (only.has('a')) {
    await scoring('fashionmnist', 1, b1, res.rows);
    save();
    await scoring('fashionmnist', 64, b64, res.rows);
    save();
  }
  if (only.has('b')) { await training('fashionmnist', 128, res.rows); save(); }
  if (only.has('c')) { await endToEnd(res.rows); save(); }
  if (only.has('d')) {
    await scoring('cifar10', 1, device === 'cpu' ? 4 : 256, res.rows);
    save();
    await training('cifar10', device === 'cpu' ? 16 : 128, res.rows);
    save();
  }
  res.referenceBlas = [...blasSeen];
  const md = markdown(res);
  console.log(md);
  save();
  writeMarkdown(md);
  fs.rmSync(tmp, { recursive: true, force: true });
})().catch((e) => { console.error(e); process.exit(1); });
