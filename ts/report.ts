/**
 * `hvae-native evaluate` and `main`: the paper's protocol plus the label-free detector, printed as a table and
 * written as a report folder (report.md, report.json, ROC curves, score densities, latent reconstructions).
 */
import * as path from 'node:path';
import type { HVAE } from './model.js';
import { Dataset, splitTrainValidation, subset } from './data/stream.js';
import { permutation } from './data/random.js';
import { evaluateOOD, EvaluateOptions, EvaluationReport, EvaluationRow, reportMarkdown, reportJson } from './evaluate.js';
import { OODDetector, loadDetector } from './detector.js';
import { oodMetrics } from './metrics.js';
import { rocFigure, densityFigure, panelFigure, writeFigure } from './plots.js';
import { writeImageGrid } from './images.js';
import { ensureDir, writeFileAtomic } from './safetensors.js';
import { optionError } from './errors.js';

/** Options of {@link runEvaluation}. */
export interface RunEvaluationOptions extends EvaluateOptions {
  /** Folder for the report and figures. */
  outDir: string;
  /** Images of ID validation data used to fit the detector when the model file has no calibration. Default 2000. */
  detectorImages?: number;
  /**
   * Data root for the ID training split that the detector is fitted on when the model file has no calibration (as in
   * `loadDataset(name, { root })`; the CLI's `--root`). Default: the usual data roots.
   */
  dataRoot?: string;
}

/** Result of {@link runEvaluation}. */
export interface RunEvaluationResult {
  /** The evaluation table and its settings, as {@link evaluateOOD} returns them. */
  report: EvaluationReport;
  /** The same report as Markdown (what the CLI prints and writes to `report.md`). */
  markdown: string;
  /** Paths of every file written under `outDir` (report, figures, image grids). */
  files: string[];
}

function take(a: Float32Array, idx: Int32Array, sign = 1): Float64Array {
  const out = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = sign * a[idx[i]];
  return out;
}

/**
 * The ID validation data for the detector: the held-out part of the ID training split, by the model's split seed; or,
 * when that split cannot be loaded, why.
 */
async function detectorData(id: Dataset, modelFile: string, n: number, root?: string): Promise<Dataset | string> {
  const meta = (await import('./model.js')).HVAE.readMetadata(modelFile);
  let splitSeed = 0;
  let validation = 5000;
  try {
    const fo = JSON.parse(meta.fitOptions ?? '{}') as { splitSeed?: number; validationCount?: number };
    splitSeed = fo.splitSeed ?? 0;
    validation = fo.validationCount ?? 5000;
  } catch { /* defaults */ }
  const name = id.name.replace(/ test$/, '');
  let train: Dataset;
  try {
    const { loadDataset } = await import('./data/datasets.js');
    train = await loadDataset(name, { split: 'train', ...(root !== undefined ? { root } : {}) });
  } catch (e) {
    return `the ${name} training split, whose held-out part would fit one, could not be loaded (${(e as Error).message.split('\n')[0]})`;
  }
  const { validation: val } = splitTrainValidation(train, { validation, seed: splitSeed });
  const pick = permutation(val.length, 'detector').slice(0, Math.min(n, val.length));
  return subset(val, pick, `${name} validation`);
}

/**
 * Runs the protocol, fits (or loads) the label-free detector, prints nothing, and writes the report folder.
 */
export async function runEvaluation(
  model: HVAE,
  sets: { id: Dataset; ood: Dataset[]; idTrain?: Dataset; modelFile: string },
  options: RunEvaluationOptions,
): Promise<RunEvaluationResult> {
  if (options === null || typeof options !== 'object' || typeof options.outDir !== 'string') optionError('runEvaluation needs options with outDir');
  const { outDir: _outDir, detectorImages: _detectorImages, dataRoot: _dataRoot, ...evaluateOptions } = options;
  // The folder first: a path that cannot be a folder fails now, not after minutes of scoring.
  ensureDir(options.outDir, 'the report folder');
  const report = await evaluateOOD(model, { id: sets.id, ood: sets.ood, idTrain: sets.idTrain }, evaluateOptions);
  const files: string[] = [];

  // ---- the label-free detector (paper §5: per-example choice of k) ----
  let detector: OODDetector | undefined;
  let detectorNote = '';
  const meta = (await import('./model.js')).HVAE.readMetadata(sets.modelFile);
  if (meta.detector) {
    detector = loadDetector(model, sets.modelFile);
    detectorNote = `Detector: calibration stored in ${path.basename(sets.modelFile)} (fitted on ${detector.toJSON().fittedOn}).`;
  } else if (!report.settings.k.some((k) => k > 0)) {
    detectorNote = `Detector rows left out: it compares LLR>k for k >= 1, and this evaluation computes k = ${report.settings.k.join(', ')} only.`;
  } else if (report.settings.lowerLatents !== 'mode' || report.settings.importanceSamplesAboveK !== 1) {
    detectorNote = `Detector rows left out: the detector works with S' = 1 and lower latents 'mode', and this evaluation uses ` +
      `S' = ${report.settings.importanceSamplesAboveK} and lower latents '${report.settings.lowerLatents}'.`;
  } else {
    const val = await detectorData(sets.id, sets.modelFile, options.detectorImages ?? 2000, options.dataRoot);
    if (typeof val === 'string') {
      detectorNote = `Detector rows left out: the model file has no detector calibration, and ${val}.`;
    } else {
      detector = await new OODDetector(model, { k: report.settings.k.filter((k) => k > 0), importanceSamples: options.importanceSamples ?? 1, transform: options.transform ?? 'auto' }).fit(val);
      detectorNote = `Detector: fitted on ${val.length} images of ${val.name} (held out of the training split, never the test set); threshold at ${(100 * detector.toJSON().falsePositiveRate).toFixed(0)}% ID false positives.`;
    }
  }
  // The detector's LLR distributions hold for the settings it was calibrated with (S importance samples for L, one
  // sample of L>k, the lower latents at the conditional prior's mode). Scores computed otherwise are on another
  // scale, and thresholding them would report a meaningless row: leave the detector out and say why.
  if (detector) {
    const cal = detector.toJSON();
    const st = report.settings;
    if (cal.importanceSamples !== st.importanceSamples || st.importanceSamplesAboveK !== 1 || st.lowerLatents !== 'mode') {
      detectorNote = `Detector rows left out: its calibration holds for S = ${cal.importanceSamples}, S' = 1 and lower latents 'mode', ` +
        `and this evaluation uses S = ${st.importanceSamples}, S' = ${st.importanceSamplesAboveK} and lower latents '${st.lowerLatents}'.`;
      detector = undefined;
    } else if (cal.k.some((k) => !st.k.includes(k))) {
      detectorNote = `Detector rows left out: it compares LLR>k for k = ${cal.k.join(', ')}, and this evaluation computes k = ${st.k.join(', ')}.`;
      detector = undefined;
    } else if (st.precision !== 'float32') {
      // The detector calibrates (and scores its own calls) in float32. Lower-precision LLRs are on the same scale,
      // within the tolerance that bench/precision.js measures, so the rows stay, but the report says what was mixed.
      detectorNote += ` Its calibration was computed in float32 and is applied here to ${st.precision} scores.`;
    }
  }
  const detectorRows: EvaluationRow[] = [];
  const decisions: string[] = [];
  if (detector) {
    const ref = report.scores[report.reference];
    const refDet = detector.decide(detector.scoreLlr(ref.llr));
    for (const [name, pair] of Object.entries(report.pairs)) {
      const o = report.scores[name];
      const oDet = detector.decide(detector.scoreLlr(o.llr));
      const m = oodMetrics(take(refDet.score, pair.reference), take(oDet.score, pair.ood));
      const row: EvaluationRow = { ood: name, score: 'detector', importanceSamples: report.settings.importanceSamples, auroc: m.auroc, auprc: m.auprc, fpr80: m.fpr80, fpr95: m.fpr95, nIn: m.nIn, nOut: m.nOut };
      detectorRows.push(row);
      const tpr = pair.ood.reduce((a, i) => a + oDet.isOOD[i], 0) / pair.ood.length;
      const fpr = pair.reference.reduce((a, i) => a + refDet.isOOD[i], 0) / pair.reference.length;
      const kCounts = new Map<number, number>();
      for (const i of pair.ood) kCounts.set(oDet.k[i], (kCounts.get(oDet.k[i]) ?? 0) + 1);
      const kText = [...kCounts.entries()].sort((a, b) => a[0] - b[0]).map(([k, c]) => `k=${k}: ${(100 * c / pair.ood.length).toFixed(0)}%`).join(', ');
      decisions.push(`- ${name}: flagged ${(100 * tpr).toFixed(1)}% of OOD images and ${(100 * fpr).toFixed(1)}% of ${report.reference} at the threshold; deviating k among OOD images: ${kText}`);
    }
    report.rows.push(...detectorRows);
  }

  let markdown = reportMarkdown(report);
  if (detectorNote) markdown += `\n\n${detectorNote}\n${decisions.join('\n')}`;

  // ---- figures ----
  const ref = report.scores[report.reference];
  for (const [name, pair] of Object.entries(report.pairs)) {
    const o = report.scores[name];
    const slug = name.replace(/[^A-Za-z0-9]+/g, '_').replace(/_+$/, '');
    const ks = report.settings.k;
    const curves = [
      ...ks.map((k) => ({ label: `L>${k}`, scoresIn: take(ref.boundAboveK[k], pair.reference, -1), scoresOut: take(o.boundAboveK[k], pair.ood, -1) })),
      ...ks.filter((k) => k > 0).map((k) => ({ label: `LLR>${k}`, scoresIn: take(ref.llr[k], pair.reference), scoresOut: take(o.llr[k], pair.ood) })),
    ];
    if (detector) {
      const refDet = detector.scoreLlr(ref.llr);
      const oDet = detector.scoreLlr(o.llr);
      curves.push({ label: 'detector', scoresIn: take(refDet.score, pair.reference), scoresOut: take(oDet.score, pair.ood) });
    }
    const roc = rocFigure(curves, { title: `${report.reference} (in) vs ${name} (out)` });
    const rocFile = path.join(options.outDir, `roc_${slug}`);
    await writeFigure(`${rocFile}.svg`, roc);
    await writeFigure(`${rocFile}.png`, roc);
    files.push(`${rocFile}.svg`, `${rocFile}.png`);
    const panels = curves.map((c) => densityFigure([
      { label: report.reference, values: c.scoresIn },
      { label: name, values: c.scoresOut },
    ], { title: c.label, xLabel: c.label.startsWith('L>') ? `-${c.label}` : c.label }));
    const dens = panelFigure(panels, { columns: Math.min(3, panels.length) });
    const densFile = path.join(options.outDir, `density_${slug}`);
    await writeFigure(`${densFile}.svg`, dens);
    await writeFigure(`${densFile}.png`, dens);
    files.push(`${densFile}.svg`, `${densFile}.png`);
  }
  // Latent reconstructions (paper Figure 1): original, then reconstructions with the k lowest latents from the prior.
  const lr = await latentReconstructions(model, [sets.id, ...sets.ood], path.join(options.outDir, 'latent_reconstructions.png'));
  files.push(lr);

  const md = path.join(options.outDir, 'report.md');
  writeFileAtomic(md, Buffer.from(`${markdown}\n`));
  const json = path.join(options.outDir, 'report.json');
  writeFileAtomic(json, Buffer.from(`${JSON.stringify({ ...reportJson(report), detector: detector?.toJSON().threshold !== undefined ? { threshold: detector.toJSON().threshold, k: detector.ks } : null }, null, 2)}\n`));
  files.push(md, json);
  return { report, markdown, files };
}

/**
 * The paper's Figure 1: for 6 images of each set, the original and its reconstructions from L>k for k = 0..L
 * (the k lowest latents from the conditional prior, the rest from the posterior mean), one row each.
 */
export async function latentReconstructions(model: HVAE, sets: Dataset[], file: string, perSet = 6): Promise<string> {
  const L = model.numLayers;
  const [c, h, w] = model.config.inputShape;
  const per = c * h * w;
  const rows: Float32Array[] = [];
  for (const d of sets) {
    const idx = permutation(d.length, `figure1:${d.name}`).slice(0, perSet);
    const b = await d.read(idx);
    rows.push(Float32Array.from(b.images.data, (v) => v / 255));
    for (let k = 0; k <= L; k++) {
      const r = await model.generate({ images: b.images, k, posteriorMean: true });
      rows.push(r.data);
    }
  }
  const n = rows.length * perSet;
  const all = new Float32Array(n * per);
  rows.forEach((r, i) => all.set(r.subarray(0, perSet * per), i * perSet * per));
  await writeImageGrid(file, { data: all, shape: [n, c, h, w] }, { columns: perSet, scale: 2 });
  return file;
}
