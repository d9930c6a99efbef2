/**
 * The paper's evaluation protocol (§5 of the paper, ALGORITHM.md §6 and §11.2): the in-distribution test set is
 * the reference, each OOD set is compared with an equal number of examples (all of the smaller set, a seeded
 * random sample of the larger), scores are -L>k and LLR>k for every k, and the metrics are AUROC, AUPRC, FPR80
 * (plus FPR95). The result is a table in the layout of the paper's Table 7.
 */
import { HVAEError, optionError } from './errors.js';
import type { HVAE, InputTransform } from './model.js';
import { Dataset, subset } from './data/stream.js';
import { batches } from './data/stream.js';
import { permutation } from './data/random.js';
import { oodMetrics, OODMetrics } from './metrics.js';

/** Options of {@link scoreDataset} and {@link evaluateOOD}. */
export interface EvaluateOptions {
  /** The k of L>k / LLR>k. Default: every k in 0..L-1. */
  k?: number[];
  /** S: importance samples of the ELBO. Default 1. */
  importanceSamples?: number;
  /** S': importance samples of L>k. Default 1 (the published setting). */
  importanceSamplesAboveK?: number;
  /** `'mode'` (reference) or `'sample'` (paper) for the lower latents of L>k. Default `'mode'`. */
  lowerLatents?: 'mode' | 'sample';
  /** Arithmetic of the layers (see {@link ScoreOptions.precision}). Default `'float32'`. */
  precision?: 'float32' | 'bfloat16';
  /** Input transform (default `'auto'`: dynamic binarization / dequantization, as the reference evaluates). */
  transform?: InputTransform;
  /** Images per scoring call. Default 500 (the reference's evaluation batch). */
  batchSize?: number;
  /** At most this many images per set (a seeded random sample). Default: all. */
  limit?: number;
  /**
   * Seed of every random subsample. Default 0. {@link evaluateOOD} also re-seeds the model's random stream with it
   * (the dynamic binarisation and the posterior draws), so the same weights and seed give the same report whatever
   * the model did before (a training checkpoint, say, restores its run's generator state).
   */
  seed?: number;
  /** Progress: images scored so far of the total for the set being scored. */
  onProgress?: (p: { set: string; done: number; total: number }) => void;
  /** Abort scoring between batches. */
  signal?: AbortSignal;
}

/** Per-image scores of one dataset. */
export interface SetScores {
  /** Dataset name. */
  name: string;
  /** Dataset indices of the scored images, in the order of the arrays below. */
  indices: Int32Array;
  /** L^S per image. */
  elbo: Float32Array;
  /** L>k per image. */
  boundAboveK: Record<number, Float32Array>;
  /** LLR>k = L^S - L>k per image. */
  llr: Record<number, Float32Array>;
  /** File names, when the dataset has them. */
  names?: string[];
}

/** One row of the results table: one OOD set and one score. */
export interface EvaluationRow {
  /** The OOD (positive) set. */
  ood: string;
  /** The score: 'L>k' (score = -L>k), 'LLR>k', or 'detector'. Higher score = more OOD. */
  score: string;
  /** k of the score, when it has one. */
  k?: number;
  /** Importance samples of the ELBO behind the score. */
  importanceSamples: number;
  /** Area under the ROC curve, the OOD set as the positive class (0.5 = chance, 1 = perfect separation). */
  auroc: number;
  /** Area under the precision-recall curve, the OOD set as the positive class. */
  auprc: number;
  /** False-positive rate (in-distribution images flagged) at 80% true-positive rate. Lower is better. */
  fpr80: number;
  /** False-positive rate at 95% true-positive rate. Lower is better. */
  fpr95: number;
  /** Examples of the reference (in-distribution) set that were compared. */
  nIn: number;
  /** Examples of the OOD set that were compared. */
  nOut: number;
}

/** The evaluation report. */
export interface EvaluationReport {
  /** Reference (in-distribution test) set name. */
  reference: string;
  /** Settings used. */
  settings: { k: number[]; importanceSamples: number; importanceSamplesAboveK: number; lowerLatents: string; precision: string; seed: number; limit: number | null };
  /** One row per OOD set and score. */
  rows: EvaluationRow[];
  /** Per OOD set: the k whose LLR>k has the highest AUROC (the paper's dataset-level choice, which uses labels). */
  bestK: Record<string, { k: number; auroc: number }>;
  /** Scores of every set (for figures and further analysis). */
  scores: Record<string, SetScores>;
  /** Pairs actually compared: OOD set name -> positions in the reference's and the OOD set's score arrays. */
  pairs: Record<string, { reference: Int32Array; ood: Int32Array }>;
}

function defaultKs(model: HVAE, ks?: number[]): number[] {
  return ks ?? Array.from({ length: model.numLayers }, (_, i) => i);
}

function checkLimit(limit: unknown): void {
  if (limit !== undefined && !(Number.isInteger(limit) && (limit as number) >= 1)) {
    optionError(`limit must be a positive integer, got ${String(limit)}`);
  }
}

/**
 * Scores (a seeded random subset of) a dataset in batches: L^S, L>k and LLR>k per image. Streams, so memory
 * holds only the scores.
 */
export async function scoreDataset(model: HVAE, data: Dataset, options: EvaluateOptions & { indices?: ArrayLike<number> } = {}): Promise<SetScores> {
  checkLimit(options.limit);
  const ks = defaultKs(model, options.k);
  let view: Dataset = data;
  let indices: Int32Array;
  if (options.indices) {
    indices = Int32Array.from(options.indices);
    view = subset(data, indices, data.name);
  } else if (options.limit !== undefined && options.limit < data.length) {
    indices = permutation(data.length, `${options.seed ?? 0}:${data.name}`).slice(0, options.limit);
    view = subset(data, indices, data.name);
  } else {
    indices = Int32Array.from({ length: data.length }, (_, i) => i);
  }
  const n = view.length;
  if (n === 0) throw new HVAEError('ERR_HVAE_DATA', `${data.name} is empty`);
  const out: SetScores = { name: data.name, indices, elbo: new Float32Array(n), boundAboveK: {}, llr: {} };
  for (const k of ks) {
    out.boundAboveK[k] = new Float32Array(n);
    out.llr[k] = new Float32Array(n);
  }
  let names: string[] | undefined;
  let at = 0;
  for await (const b of batches(view, { batchSize: options.batchSize ?? 500, readAhead: 2, signal: options.signal })) {
    const s = await model.scores(b.images, {
      k: ks, importanceSamples: options.importanceSamples ?? 1, importanceSamplesAboveK: options.importanceSamplesAboveK ?? 1,
      lowerLatents: options.lowerLatents ?? 'mode', transform: options.transform ?? 'auto',
      precision: options.precision ?? 'float32',
    });
    out.elbo.set(s.elbo, at);
    for (const k of ks) {
      out.boundAboveK[k].set(s.boundAboveK[k], at);
      out.llr[k].set(s.llr[k], at);
    }
    if (b.names) (names ??= []).push(...b.names);
    at += s.size;
    options.onProgress?.({ set: data.name, done: at, total: n });
  }
  if (names) out.names = names;
  return out;
}

/** Seeded equal-size pairing (paper §5): all of the smaller set, a random sample of equally many of the larger. */
export function equalSizePairs(nRef: number, nOod: number, seed: number | string): { reference: Int32Array; ood: Int32Array } {
  const n = Math.min(nRef, nOod);
  const pick = (len: number, tag: string): Int32Array => (len === n ? Int32Array.from({ length: n }, (_, i) => i) : permutation(len, `${seed}:${tag}`).slice(0, n).sort());
  return { reference: pick(nRef, 'reference'), ood: pick(nOod, 'ood') };
}

function take(a: Float32Array, idx: Int32Array, negate = false): Float64Array {
  const out = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = negate ? -a[idx[i]] : a[idx[i]];
  return out;
}

function row(ood: string, score: string, k: number | undefined, S: number, m: OODMetrics): EvaluationRow {
  return { ood, score, ...(k === undefined ? {} : { k }), importanceSamples: S, auroc: m.auroc, auprc: m.auprc, fpr80: m.fpr80, fpr95: m.fpr95, nIn: m.nIn, nOut: m.nOut };
}

/** Metrics rows for one reference/OOD pair of score sets: -L>k and LLR>k (k >= 1) for every k. */
export function compareSets(reference: SetScores, ood: SetScores, S: number, pair: { reference: Int32Array; ood: Int32Array }): EvaluationRow[] {
  const rows: EvaluationRow[] = [];
  const ks = Object.keys(reference.boundAboveK).map(Number).sort((a, b) => a - b);
  for (const k of ks) {
    rows.push(row(ood.name, `L>${k}`, k, S, oodMetrics(take(reference.boundAboveK[k], pair.reference, true), take(ood.boundAboveK[k], pair.ood, true))));
  }
  for (const k of ks) {
    if (k === 0) continue; // LLR>0 compares the ELBO with itself: noise, not a score
    rows.push(row(ood.name, `LLR>${k}`, k, S, oodMetrics(take(reference.llr[k], pair.reference), take(ood.llr[k], pair.ood))));
  }
  return rows;
}

const EVALUATE_KEYS = ['k', 'importanceSamples', 'importanceSamplesAboveK', 'lowerLatents', 'precision', 'transform', 'batchSize',
  'limit', 'seed', 'onProgress', 'signal'];

/**
 * The paper's protocol: scores the in-distribution test set (`id`) and every OOD set, pairs them with equal sizes
 * and computes the metrics for every score. `idTrain` adds the ID-vs-ID sanity row (train vs test), which should
 * come out near AUROC 0.5.
 */
export async function evaluateOOD(
  model: HVAE,
  sets: { id: Dataset; ood: Dataset[]; idTrain?: Dataset },
  options: EvaluateOptions = {},
): Promise<EvaluationReport> {
  if (!sets || !sets.id || !Array.isArray(sets.ood)) optionError('evaluateOOD needs { id, ood: [...] }');
  if (options === null || typeof options !== 'object') optionError('evaluateOOD options must be an object');
  for (const key of Object.keys(options)) {
    if (!EVALUATE_KEYS.includes(key)) optionError(`unknown evaluateOOD option '${key}'; known: ${EVALUATE_KEYS.join(', ')}`);
  }
  if (sets.ood.length === 0 && !sets.idTrain) optionError('evaluateOOD needs at least one OOD set (ood: [...]) or idTrain');
  const named = [['id', sets.id], ...sets.ood.map((d, i) => [`ood[${i}]`, d]), ...(sets.idTrain ? [['idTrain', sets.idTrain]] : [])] as [string, unknown][];
  for (const [where, d] of named) {
    if (d === null || typeof d !== 'object' || typeof (d as Dataset).read !== 'function' || typeof (d as Dataset).length !== 'number') {
      optionError(`evaluateOOD: ${where} must be a Dataset (loadDataset, openIdx, ArrayDataset, ...), not ${d === null ? 'null' : (d as { data?: unknown }).data !== undefined ? 'an ImageBatch (wrap uint8 pixels in new ArrayDataset({ name, images, shape }))' : typeof d}`);
    }
  }
  const ks = defaultKs(model, options.k);
  const S = options.importanceSamples ?? 1;
  const seed = options.seed ?? 0;
  // The model's draws come from its own generator: seed it, or the report would depend on its history.
  model.seed(seed);
  const limit = options.limit;
  const others = [...sets.ood, ...(sets.idTrain ? [sets.idTrain] : [])];
  // The reference needs as many images as the largest comparison; its random sample's prefixes are random too.
  const cap = (d: Dataset) => Math.min(d.length, limit ?? Number.POSITIVE_INFINITY);
  const nRef = Math.min(cap(sets.id), Math.max(...others.map(cap)));
  const refIdx = nRef < sets.id.length ? permutation(sets.id.length, `${seed}:${sets.id.name}`).slice(0, nRef) : undefined;
  const reference = await scoreDataset(model, sets.id, { ...options, k: ks, indices: refIdx });
  const report: EvaluationReport = {
    reference: sets.id.name,
    settings: { k: ks, importanceSamples: S, importanceSamplesAboveK: options.importanceSamplesAboveK ?? 1, lowerLatents: options.lowerLatents ?? 'mode', precision: options.precision ?? 'float32', seed, limit: limit ?? null },
    rows: [], bestK: {}, scores: { [sets.id.name]: reference }, pairs: {},
  };
  for (const d of others) {
    const n = Math.min(cap(d), reference.elbo.length);
    const idx = n < d.length ? permutation(d.length, `${seed}:${d.name}`).slice(0, n) : undefined;
    const s = await scoreDataset(model, d, { ...options, k: ks, indices: idx });
    report.scores[d.name] = s;
    const pair = equalSizePairs(reference.elbo.length, s.elbo.length, `${seed}:${d.name}`);
    report.pairs[d.name] = pair;
    const rows = compareSets(reference, s, S, pair);
    report.rows.push(...rows);
    const llrRows = rows.filter((r) => r.score.startsWith('LLR'));
    if (llrRows.length) {
      const best = llrRows.reduce((a, b) => (b.auroc > a.auroc ? b : a));
      report.bestK[d.name] = { k: best.k!, auroc: best.auroc };
    }
  }
  return report;
}

/** Formats a number to 3 decimals as the paper's tables do. */
function f3(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : String(v);
}

/** The report as a Markdown table in the layout of the paper's Table 7 (rows per OOD set and score). */
export function reportMarkdown(report: EvaluationReport, title?: string): string {
  if (!report || typeof report !== 'object' || !Array.isArray(report.rows) || !report.settings) {
    optionError('reportMarkdown needs the EvaluationReport returned by evaluateOOD');
  }
  title ??= `In-distribution: ${report.reference}`;
  const lines = [
    `### ${title}`,
    '',
    `Scores: -L>k and LLR>k (higher = more OOD); OOD is the positive class. ELBO importance samples S = ${report.settings.importanceSamples}; L>k samples S' = ${report.settings.importanceSamplesAboveK}; lower latents: ${report.settings.lowerLatents}${report.settings.precision === 'float32' ? '' : `; precision: ${report.settings.precision}`}.`,
    '',
    '| OOD set | score | AUROC | AUPRC | FPR80 | FPR95 | n (ID / OOD) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of report.rows) {
    lines.push(`| ${r.ood} | ${r.score} | ${f3(r.auroc)} | ${f3(r.auprc)} | ${f3(r.fpr80)} | ${f3(r.fpr95)} | ${r.nIn} / ${r.nOut} |`);
  }
  const best = Object.entries(report.bestK);
  if (best.length) {
    lines.push('', 'Dataset-level best k (chosen with the OOD labels, as the paper\'s tables): ' +
      best.map(([n, b]) => `${n}: LLR>${b.k} (AUROC ${f3(b.auroc)})`).join('; ') + '.');
  }
  return lines.join('\n');
}

/** The report as plain JSON (typed arrays of scores left out). */
export function reportJson(report: EvaluationReport): object {
  return { reference: report.reference, settings: report.settings, rows: report.rows, bestK: report.bestK };
}
