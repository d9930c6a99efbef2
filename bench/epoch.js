#!/usr/bin/env node
'use strict';
// Issue 4's closing measurement: one full epoch of the `fashionmnist` preset on CPU, then the same training step
// (batch 128) timed with the PyTorch reference (both flavours, under OpenBLAS as in bench/run.js) in the same run,
// on the same machine, with nothing else running.
//
// The epoch is a real epoch of the bundled model's training run: the CLI's `train --resume` continues the run in
// --run until one more epoch has completed (its 55,000 training images plus the 5,000 validation images scored),
// then is stopped with SIGINT, which finishes the step in flight and saves (resume continues exactly). Use
// --fresh to train a fresh model for one epoch in a temporary folder instead.
//   node bench/epoch.js [--run models/training] [--fresh] [--threads 2] [--repeats 5] [--precision float32|bfloat16]
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1] : d; };
const ROOT = path.resolve(__dirname, '..');
const fresh = args.includes('--fresh');
const run = fresh ? fs.mkdtempSync(path.join(os.tmpdir(), 'hvae-epoch-')) : path.resolve(opt('run', path.join(ROOT, 'models', 'training')));
const threads = opt('threads', '2');
const repeats = opt('repeats', '5');
const PY = process.env.HVAE_PYTHON || '/usr/bin/python3';
const metricsFile = path.join(run, 'metrics.jsonl');

// The run's arithmetic continues as it was (the bundled model's run is bfloat16 since epoch 28): the precision of its
// last epoch, unless --precision says otherwise; float32 for a fresh run.
let precision = opt('precision', undefined);
const epochLines = () => (fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'epoch') : []);

async function oneEpoch() {
  const before = epochLines().length;
  if (precision === undefined) precision = epochLines().at(-1)?.precision ?? 'float32';
  const t0 = Date.now();
  const child = spawn(process.execPath, [path.join(ROOT, 'lib', 'cli.js'), 'train', '--data', 'FashionMNIST:train', '--out', run, '--epochs', '1000',
    '--images-every', '10', '--resume', '--quiet', '--precision', precision], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, HVAE_NUM_THREADS: threads } });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let epoch;
  for (;;) {
    await new Promise((r) => setTimeout(r, 5000));
    const lines = epochLines();
    if (lines.length > before) { epoch = lines[lines.length - 1]; break; }
    if (child.exitCode !== null) throw new Error(`training exited (${child.exitCode}) before finishing an epoch`);
  }
  const wall = (Date.now() - t0) / 1000;
  child.kill('SIGINT');
  await exited;
  return { epoch, wall };
}

function reference(flavour) {
  const r = spawnSync(PY, [path.join(__dirname, 'reference', 'bench_ref.py'), '--task', 'train', '--flavour', flavour, '--batch', '128',
    '--repeats', repeats, '--threads', threads, '--blas', 'auto', '--json'], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: threads } });
  if (r.status !== 0) throw new Error(`bench_ref.py failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

(async () => {
  const { epoch, wall } = await oneEpoch();
  const official = reference('official');
  const optimized = reference('optimized');
  const ours = epoch.imagesPerSecond;
  const lines = [
    `Machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores; ${threads} threads; ${new Date().toISOString()}.`,
    `hvae-native: epoch ${epoch.epoch} of ${path.relative(ROOT, run) || run}: ${epoch.step} steps so far, ${epoch.seconds.toFixed(0)} s of training steps ` +
      `(${ours.toFixed(1)} images/s at batch 128, data loading and binarisation included), ${wall.toFixed(0)} s wall with start-up, ` +
      `validation and checkpoints; validation ELBO ${epoch.validationElbo?.toFixed(2) ?? '-'} nats.`,
    `PyTorch reference, one training step at batch 128 (median of ${repeats}, ${official.blas}): official recipe ${official.images_per_s_median.toFixed(1)} images/s, ` +
      `optimised ${optimized.images_per_s_median.toFixed(1)} images/s.`,
    `Ratio (our epoch throughput over the reference step): ${(ours / official.images_per_s_median).toFixed(2)}x the official recipe, ` +
      `${(ours / optimized.images_per_s_median).toFixed(2)}x optimised PyTorch.`,
  ];
  console.log(lines.join('\n'));
  if (fresh) fs.rmSync(run, { recursive: true, force: true });
})().catch((e) => { console.error(e); process.exit(1); });
