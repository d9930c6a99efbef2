#!/usr/bin/env node
'use strict';
// Prints the comparison of training branches (issue 7, item 5) as Markdown: per checkpoint, the validation ELBO
// from the branch's metrics.jsonl and the AUROCs from its `hvae-native evaluate` report, and writes them as JSON.
//
//   node bench/paper/branch-table.js --out bench/paper/branches.json \
//     NAME=RUN_DIR:EPOCH:EVAL_DIR [NAME=RUN_DIR:EPOCH:EVAL_DIR ...]
//
// RUN_DIR holds the branch's metrics.jsonl (`-` for none), EVAL_DIR the report.json of `evaluate --out EVAL_DIR`.
const fs = require('node:fs');

const args = process.argv.slice(2);
let out;
const specs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out') out = args[++i];
  else specs.push(args[i]);
}
if (!specs.length) {
  console.error('usage: branch-table.js [--out FILE] NAME=RUN_DIR:EPOCH:EVAL_DIR ...');
  process.exit(2);
}
const COLS = [['MNIST test', 'L>0'], ['MNIST test', 'LLR>1'], ['MNIST test', 'LLR>2'], ['notMNIST test', 'L>0'], ['notMNIST test', 'LLR>1'], ['notMNIST test', 'LLR>2']];
const rows = [];
for (const spec of specs) {
  const [name, rest] = spec.split('=');
  const [runDir, epochText, evalDir] = rest.split(':');
  const epoch = Number(epochText);
  let validationElbo = null;
  let trainElbo = null;
  if (runDir !== '-') {
    for (const line of fs.readFileSync(`${runDir}/metrics.jsonl`, 'utf8').trim().split('\n')) {
      const r = JSON.parse(line);
      if (r.event === 'epoch' && r.epoch === epoch) { validationElbo = r.validationElbo ?? null; trainElbo = r.elbo; }
    }
  }
  const report = JSON.parse(fs.readFileSync(`${evalDir}/report.json`, 'utf8'));
  const auroc = {};
  for (const r of report.rows) auroc[`${r.ood.split(' ')[0]} ${r.score}`] = r.auroc;
  rows.push({ name, epoch, trainElbo, validationElbo, limit: report.settings.limit, auroc });
}
console.log(`| checkpoint | epoch | train ELBO | validation ELBO | ${COLS.map(([o, s]) => `${o.split(' ')[0]} ${s}`).join(' | ')} |`);
console.log(`|---|---|---|---|${COLS.map(() => '---').join('|')}|`);
for (const r of rows) {
  const f = (v, d) => (v === null || v === undefined ? '-' : v.toFixed(d));
  console.log(`| ${r.name} | ${r.epoch} | ${f(r.trainElbo, 2)} | ${f(r.validationElbo, 2)} | ${COLS.map(([o, s]) => f(r.auroc[`${o.split(' ')[0]} ${s}`], 3)).join(' | ')} |`);
}
if (out) fs.writeFileSync(out, `${JSON.stringify(rows, null, 1)}\n`);
