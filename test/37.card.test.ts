/**
 * The model card (models/README.md) and the README quote the evaluation of the model that ships, as
 * `bench/paper/reproduce.js --out bench/paper/results.json` printed it: the results file names the SHA-256 of the
 * model it evaluated, and the card's evaluation table, its history row, its status line and the README's main-job
 * paragraph must agree with that file. A rebundle without a new evaluation, or a card left at the last checkpoint's
 * numbers, fails here. Reads files only (no addon).
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSafetensors } from '../lib/safetensors.js';
import { ROOT } from './setup.js';

interface Row { ood: string; score: string; auroc: number; auprc: number; fpr80: number; nIn: number; nOut: number }
interface Results {
  model: string;
  modelSha256?: string;
  epoch?: number | null;
  bestValidationElbo?: number | null;
  S: number;
  s1: { rows: Row[] };
  sS: { rows: Row[] };
}

const MODEL = path.join(ROOT, 'models', 'fashionmnist.safetensors');
const results = (): Results => JSON.parse(fs.readFileSync(path.join(ROOT, 'bench', 'paper', 'results.json'), 'utf8')) as Results;
const card = (): string => fs.readFileSync(path.join(ROOT, 'models', 'README.md'), 'utf8');

const f3 = (v: number): string => v.toFixed(3);
/** One row of a results block, by OOD set and score. */
const rowOf = (rows: Row[], ood: string, score: string): Row => {
  const row = rows.find((x) => x.ood === ood && x.score === score);
  assert.ok(row, `results.json has no ${ood} ${score} row`);
  return row;
};

/** The differences between the card's evaluation section and the results file (empty when they agree). */
function evaluationMismatches(text: string, r: Results): string[] {
  const out: string[] = [];
  const head = /^## Evaluation \(epoch (\d+)\)$/m.exec(text);
  if (!head) return ['no "## Evaluation (epoch N)" heading'];
  if (Number(head[1]) !== r.epoch) out.push(`heading says epoch ${head[1]}, results.json epoch ${r.epoch}`);
  const want = new Map<string, Row>();
  for (const row of r.s1.rows) want.set(`${row.ood}|${row.score}|S=1`, row);
  for (const row of r.sS.rows) if (row.score.startsWith('LLR')) want.set(`${row.ood}|${row.score}|S=${r.S}`, row);
  const section = text.slice(head.index, text.indexOf('\n## ', head.index + 1));
  const seen = new Set<string>();
  const re = /^\| (MNIST test|notMNIST test) \| (L>\d|LLR>\d) \| (S=\d+) \| (\d+)\/(\d+) \| ([\d.]+) \/ ([\d.]+) \/ ([\d.]+) \|/gm;
  for (let m = re.exec(section); m; m = re.exec(section)) {
    const key = `${m[1]}|${m[2]}|${m[3]}`;
    const row = want.get(key);
    if (!row) { out.push(`${key}: not in results.json`); continue; }
    seen.add(key);
    const got = `${m[4]}/${m[5]} ${m[6]} / ${m[7]} / ${m[8]}`;
    const exp = `${row.nIn}/${row.nOut} ${f3(row.auroc)} / ${f3(row.auprc)} / ${f3(row.fpr80)}`;
    if (got !== exp) out.push(`${key}: card ${got}, results.json ${exp}`);
  }
  for (const key of want.keys()) if (!seen.has(key)) out.push(`${key}: missing from the card's table`);
  // The history table's row for this epoch: validation ELBO, MNIST L>0, LLR>1 (S=1, S=IS), LLR>2, notMNIST LLR>2.
  const hist = new RegExp(`^\\| ${r.epoch} \\| (-[\\d.]+) \\| ([\\d.]+) \\| ([\\d.]+) \\| ([\\d.]+) \\| ([\\d.]+) \\| ([\\d.]+) \\|$`, 'm').exec(section);
  if (!hist) out.push(`no history row for epoch ${r.epoch}`);
  else {
    const exp = [
      r.bestValidationElbo!.toFixed(2), f3(rowOf(r.s1.rows, 'MNIST test', 'L>0').auroc), f3(rowOf(r.s1.rows, 'MNIST test', 'LLR>1').auroc),
      f3(rowOf(r.sS.rows, 'MNIST test', 'LLR>1').auroc), f3(rowOf(r.s1.rows, 'MNIST test', 'LLR>2').auroc),
      f3(rowOf(r.s1.rows, 'notMNIST test', 'LLR>2').auroc),
    ].join(' ');
    if (hist.slice(1).join(' ') !== exp) out.push(`history row ${r.epoch}: card ${hist.slice(1).join(' ')}, results.json ${exp}`);
  }
  return out;
}

describe('37 the model card quotes the evaluation of the model that ships', () => {
  it('bench/paper/results.json evaluated the bundled models/fashionmnist.safetensors (by SHA-256 and epoch)', () => {
    const r = results();
    assert.equal(r.model, 'models/fashionmnist.safetensors');
    const bytes = fs.readFileSync(MODEL);
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    assert.equal(r.modelSha256, sha, 'the bundled model changed since bench/paper/reproduce.js last ran: rerun it (models/README.md, "Evaluation")');
    const state = JSON.parse(parseSafetensors(bytes, MODEL).metadata.trainState ?? 'null') as { epoch: number; bestValidationElbo: number } | null;
    assert.ok(state, 'the bundled model carries its training record');
    assert.equal(r.epoch, state.epoch);
    assert.equal(r.bestValidationElbo, state.bestValidationElbo);
  });

  it('the card\'s evaluation table and history row are results.json, rounded to 3 places', () => {
    assert.deepEqual(evaluationMismatches(card(), results()), []);
  });

  it('the check bites: one changed digit, a dropped row or another epoch is reported', () => {
    const text = card();
    const r = results();
    const row = rowOf(r.s1.rows, 'MNIST test', 'LLR>1');
    const cell = `| MNIST test | LLR>1 | S=1 | ${row.nIn}/${row.nOut} | ${f3(row.auroc)} `;
    assert.ok(text.includes(cell));
    const changed = text.replace(cell, `| MNIST test | LLR>1 | S=1 | ${row.nIn}/${row.nOut} | ${f3(row.auroc + 0.001)} `);
    assert.equal(evaluationMismatches(changed, r).length, 1);
    const dropped = text.split('\n').filter((l) => !l.startsWith('| notMNIST test | L>2 | S=1 |')).join('\n');
    assert.match(evaluationMismatches(dropped, r).join('\n'), /notMNIST test\|L>2\|S=1: missing/);
    assert.match(evaluationMismatches(text, { ...r, epoch: (r.epoch ?? 0) + 1 }).join('\n'), /heading says epoch/);
  });

  it('the card\'s status line and the README\'s main-job paragraph name the same epoch, ELBO and MNIST scores', () => {
    const r = results();
    const text = card();
    const elbo = r.bestValidationElbo!.toFixed(2);
    assert.match(text, new RegExp(`\\*\\*Status:[^*]*epoch ${r.epoch} of the paper's 1,000\\*\\*[^(]*\\(${elbo.replace('.', '\\.')} nats`));
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const para = readme.slice(readme.indexOf('## What the main job shows'), readme.indexOf('\n## ', readme.indexOf('## What the main job shows') + 1));
    assert.match(para, new RegExp(`\\(epoch ${r.epoch},`));
    // Each score next to its name ("L>0 AUROC 0.283", "LLR>1 0.310"), not merely somewhere in the paragraph.
    for (const [score, label] of [['L>0', 'L>0 AUROC'], ['LLR>1', 'LLR>1'], ['LLR>2', 'LLR>2']]) {
      const v = f3(rowOf(r.s1.rows, 'MNIST test', score).auroc);
      assert.match(para, new RegExp(`${label}\\s+${v.replace('.', '\\.')}\\b`), `README main-job paragraph lacks MNIST ${label} ${v}`);
    }
  });
});
