#!/usr/bin/env node
'use strict';
// Makes the bundled model, models/fashionmnist.safetensors, from a training run's best checkpoint: the weights and
// config only (no Adam state: the package stays small), the run's training metadata, and a label-free detector
// calibrated on the run's own validation split (the 5,000 held-out FashionMNIST training images, split seed from
// the checkpoint), so the test sets are never touched.
//   node scripts/bundle-model.js [--run models/training] [--out models/fashionmnist.safetensors] [--checkpoint best|last]
const path = require('node:path');
const fs = require('node:fs');

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const ROOT = path.resolve(__dirname, '..');
const run = path.resolve(opt('run', path.join(ROOT, 'models', 'training')));
const out = path.resolve(opt('out', path.join(ROOT, 'models', 'fashionmnist.safetensors')));
const which = opt('checkpoint', 'best');

async function main() {
  const { HVAE, loadDataset, OODDetector, saveWithDetector, splitTrainValidation } = require(path.join(ROOT, 'lib', 'index.js'));
  const file = path.join(run, `${which}.safetensors`);
  const meta = HVAE.readMetadata(file);
  const model = HVAE.load(file);
  const training = meta.fitOptions ? JSON.parse(meta.fitOptions) : {};
  const splitSeed = Number(training.splitSeed ?? 0);
  const validationCount = Number(training.validationCount ?? 5000);
  const train = await loadDataset('FashionMNIST', { split: 'train' });
  const { validation } = splitTrainValidation(train, { validation: validationCount, seed: splitSeed });
  const t0 = Date.now();
  const detector = await new OODDetector(model, { seed: 0 }).fit(validation);
  const keep = {};
  for (const [k, v] of Object.entries(meta)) if (!['format', 'formatVersion', 'config', 'detector', 'optimizerSteps'].includes(k)) keep[k] = v;
  keep.bundledFrom = path.relative(ROOT, file);
  keep.detectorCalibration = `FashionMNIST train, validation split (${validation.length} images, split seed ${splitSeed})`;
  saveWithDetector(model, detector, out, keep);
  const size = fs.statSync(out).size;
  console.log(`wrote ${path.relative(ROOT, out)} (${(size / 1e6).toFixed(2)} MB) from ${path.relative(ROOT, file)}; detector fitted on ${validation.length} validation images in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log(`training state: ${meta.trainState}`);
  model.dispose();
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
