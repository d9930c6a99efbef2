#!/usr/bin/env node
'use strict';
// Branches a training run into a variant with live skip connections (issue 7, item 5), so that the variant and
// the run itself can be compared from the same point instead of from scratch.
//
//   node bench/paper/branch.js --from models/training/last.safetensors --out /tmp/branch-skips
//   node lib/cli.js train --out /tmp/branch-skips --resume --skip-connections paper --epochs N ...
//
// The checkpoint's model uses the reference's dropped equal-shape skips (ALGORITHM.md §8 item 1). The branch
// is the same model with skipConnections 'paper': every weight, Adam moment, the RNG state and the training
// progress are copied, and the skips' new 1x1 weight-normalised convolutions start with gain g = 0 and bias 0,
// so at the branch point the variant computes exactly the same function (this script checks that on a batch:
// the ELBO and every L>k must agree). Their direction v is the variant's own seeded initialisation; with g = 0
// only g receives a gradient at first. The new parameters start with fresh Adam moments.
const fs = require('node:fs');
const path = require('node:path');
const { HVAE } = require('../../lib/index.js');
const { openSource } = require('../../lib/cli.js');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

async function main() {
  const from = arg('from', path.join(__dirname, '..', '..', 'models', 'training', 'last.safetensors'));
  const out = arg('out');
  if (!out) throw new Error('--out DIR is required');
  const meta = HVAE.readMetadata(from);
  if (!meta.trainState) throw new Error(`${from} has no training state`);
  const src = HVAE.load(from);
  if (src.config.skipConnections !== 'reference') throw new Error(`${from} already has skipConnections '${src.config.skipConnections}'`);
  const dst = HVAE.create({ ...src.config, skipConnections: 'paper' });

  const srcState = src.getState();
  const dstState = dst.getState();
  const merged = {};
  const added = [];
  for (const [name, t] of Object.entries(dstState)) {
    if (name in srcState) {
      if (srcState[name].shape.join() !== t.shape.join()) throw new Error(`${name}: shape ${srcState[name].shape} vs ${t.shape}`);
      merged[name] = srcState[name];
    } else if (/\.aux_op\.conv\.(weight_g|bias)$/.test(name)) {
      merged[name] = { shape: t.shape, data: new Float32Array(t.data.length) }; // g = 0, bias = 0: a no-op at first
      added.push(name);
    } else if (/\.aux_op\.conv\.weight_v$/.test(name)) {
      merged[name] = t;
      added.push(name);
    } else {
      throw new Error(`unexpected new parameter ${name}`);
    }
  }
  for (const name of Object.keys(srcState)) if (!(name in dstState)) throw new Error(`parameter ${name} has no place in the variant`);
  dst.setState(merged);
  const native = dst.nativeModel();
  native.setOptimizerState(src.nativeModel().getOptimizerState());
  const rng = src.nativeModel().getRngState(); // the run's generator, restored after the check below

  // The branch point must be the same function: score a fixed batch with both, same seed.
  const data = await openSource('FashionMNIST:test', { defaultSplit: 'test' });
  const n = 64;
  const batch = await data.read(Array.from({ length: n }, (_, i) => i));
  const x = batch.images;
  const ks = Array.from({ length: src.numLayers }, (_, i) => i);
  src.seed(7);
  dst.seed(7);
  const a = await src.scores(x, { k: ks });
  const b = await dst.scores(x, { k: ks });
  let worst = 0;
  for (const k of ks) for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a.boundAboveK[k][i] - b.boundAboveK[k][i]));
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a.elbo[i] - b.elbo[i]));
  if (worst > 1e-3) throw new Error(`the branch does not compute the same bounds: worst difference ${worst} nats`);
  native.setRngState(rng);

  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, 'last.safetensors');
  const keep = ['trainState', 'fitOptions', 'trainData', 'trainImages', 'validationImages'];
  const metadata = { savedAt: new Date().toISOString(), branchedFrom: path.resolve(from), branchedVariant: 'skipConnections=paper' };
  for (const k of keep) if (meta[k] !== undefined) metadata[k] = meta[k];
  dst.save(file, { trainingState: true, metadata });
  const metrics = path.join(path.dirname(from), 'metrics.jsonl');
  if (fs.existsSync(metrics)) fs.copyFileSync(metrics, path.join(out, 'metrics.jsonl'));
  fs.appendFileSync(path.join(out, 'metrics.jsonl'), `${JSON.stringify({ time: new Date().toISOString(), event: 'branched', from: path.resolve(from), variant: 'skipConnections=paper', added: added.length, worstBoundDifference: worst })}\n`);
  console.log(`branched ${from} (step ${JSON.parse(meta.trainState).step}) into ${file}: ${added.length} new tensors ` +
    `(${added.filter((s) => s.endsWith('weight_v')).length} skip convolutions, g = 0), bounds agree within ${worst.toExponential(2)} nats on ${n} images`);
  src.dispose();
  dst.dispose();
}

main().catch((e) => { console.error(e.message); process.exit(1); });
