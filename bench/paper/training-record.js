#!/usr/bin/env node
'use strict';
// Prints the training record of a run directory (default models/training) as Markdown, from its metrics.jsonl
// and its last checkpoint: epochs, validation ELBO (nats and bits/dim), throughput and hours, for the model card.
//   node bench/paper/training-record.js [models/training]
const fs = require('node:fs');
const path = require('node:path');

const dir = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'models', 'training'));
const lines = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const epochs = lines.filter((l) => l.event === 'epoch');
if (!epochs.length) { console.log('no completed epoch yet'); process.exit(0); }
const hours = epochs.reduce((a, e) => a + e.seconds, 0) / 3600;
const best = epochs.reduce((a, e) => (e.validationElbo !== undefined && (a === null || e.validationElbo > a.validationElbo) ? e : a), null);
console.log('| epoch | beta | free nats | train loss | train ELBO | validation ELBO (nats) | bits/dim | precision | images/s | minutes |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const e of epochs) {
  console.log(`| ${e.epoch} | ${e.beta.toFixed(3)} | ${e.freeNats.toFixed(3)} | ${e.loss.toFixed(1)} | ${e.elbo.toFixed(1)} | ${e.validationElbo?.toFixed(2) ?? '-'}${e.best ? ' (best)' : ''} | ${e.validationBitsPerDim?.toFixed(4) ?? '-'} | ${e.precision ?? 'float32'} | ${e.imagesPerSecond.toFixed(1)} | ${(e.seconds / 60).toFixed(1)} |`);
}
console.log('');
// Hours of training: the sum of the epochs' training-step time (`seconds` in metrics.jsonl; validation, checkpoint
// saves and pauses between sessions are not counted).
console.log(`${epochs.length} epochs, ${hours.toFixed(2)} hours of training; ${best ? `best validation ELBO ${best.validationElbo.toFixed(2)} nats (${best.validationBitsPerDim.toFixed(4)} bits/dim) at epoch ${best.epoch}` : 'no validation ELBO recorded'}.`);
