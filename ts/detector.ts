/**
 * Label-free OOD decisions per image, the paper's practical rule for choosing k (its §5, "Selection of k"):
 * keep the in-distribution distribution of LLR>k for every k as the reference; an input is OOD if, for any k, its
 * LLR>k lies far in that reference's tail, and the k with the largest deviation is reported with it.
 *
 * Concretely, for each k the deviation of a score s is d_k = -log10 p_k with the empirical right-tail p-value
 * p_k = (1 + #{reference >= s}) / (N + 1) (large LLR = OOD). The detector score is max_k d_k (higher = more OOD),
 * and the decision threshold is set on held-out in-distribution data at the chosen false-positive rate.
 */
import { HVAEError, optionError } from './errors.js';
import type { HVAE, InputTransform } from './model.js';
import { batches, Dataset, subset } from './data/stream.js';
import { permutation } from './data/random.js';
import { firstNonFinite, type ImageBatch } from './tensor.js';

/** Options of {@link OODDetector}. */
export interface DetectorOptions {
  /** The k whose LLR>k are tested. Default: 1..L-1 (LLR>0 is noise). */
  k?: number[];
  /** Importance samples of the ELBO. Default 1. */
  importanceSamples?: number;
  /** Input transform. Default `'auto'`. */
  transform?: InputTransform;
  /** In-distribution false-positive rate of `predict`. Default 0.05. */
  falsePositiveRate?: number;
  /** Fraction of the fit data held out to calibrate the threshold. Default 0.5. */
  calibrationFraction?: number;
  /** Seed of the reference/calibration split. Default 0. */
  seed?: number;
  /** Images per scoring call. Default 500. */
  batchSize?: number;
}

/** Per-image detector output. */
export interface DetectorScores {
  /** max_k deviation: higher = more OOD. */
  score: Float32Array;
  /** The k with the largest deviation, per image. */
  k: Int32Array;
  /** Per k: the deviation -log10 p_k. */
  deviation: Record<number, Float32Array>;
  /** Per k: the raw LLR>k. */
  llr: Record<number, Float32Array>;
}

/** {@link DetectorScores} plus the decision. */
export interface DetectorPredictions extends DetectorScores {
  /** Per image: 1 = out-of-distribution, 0 = in-distribution. */
  isOOD: Uint8Array;
  /** The threshold on `score` in use. */
  threshold: number;
}

/** Serialisable calibration (stored in checkpoints under the `detector` metadata key). */
export interface DetectorState {
  /** The values of k whose LLR>k the detector compares. */
  k: number[];
  /** Importance samples S of the ELBO in the LLRs it was calibrated with. */
  importanceSamples: number;
  /** The input transform used when scoring. */
  transform: InputTransform;
  /** The target share of in-distribution images flagged. */
  falsePositiveRate: number;
  /** The decision threshold on the detector's score: the (1 - falsePositiveRate) quantile of the calibration part. */
  threshold: number;
  /** Sorted reference LLR>k per k. */
  reference: Record<string, number[]>;
  /** The name of the dataset it was fitted on. */
  fittedOn: string;
  /** Images in the reference part (the LLR distributions). */
  nReference: number;
  /** Images in the calibration part (the threshold). */
  nCalibration: number;
}

function upperBound(sorted: Float32Array, v: number): number {
  // number of elements <= v
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

const DETECTOR_KEYS = ['k', 'importanceSamples', 'transform', 'falsePositiveRate', 'calibrationFraction', 'seed', 'batchSize'];

function isDataset(x: unknown): x is Dataset {
  return x !== null && typeof x === 'object' && typeof (x as Dataset).read === 'function' && typeof (x as Dataset).length === 'number';
}

/** Collects images from an ImageBatch, a Dataset or an async iterable of batches. */
async function* asBatches(input: ImageBatch | Dataset | AsyncIterable<ImageBatch>, batchSize: number): AsyncGenerator<ImageBatch> {
  if (isDataset(input)) {
    for await (const b of batches(input, { batchSize })) yield b.images;
  } else if (input !== null && typeof input === 'object' && (input as ImageBatch).data && (input as ImageBatch).shape) {
    yield input as ImageBatch;
  } else if (input !== null && typeof input === 'object' && (input as AsyncIterable<ImageBatch>)[Symbol.asyncIterator]) {
    for await (const b of input as AsyncIterable<ImageBatch>) yield b;
  } else {
    optionError('expected an ImageBatch, a Dataset or an async iterable of ImageBatch');
  }
}

/**
 * The label-free detector. `fit` on in-distribution validation data (never the test set), then `score` or
 * `predict` new images. Higher scores mean more out-of-distribution.
 */
export class OODDetector {
  private state: DetectorState | null = null;
  private sorted: Map<number, Float32Array> = new Map();
  private readonly options: Required<Omit<DetectorOptions, 'k'>> & { k?: number[] };

  /**
   * A detector over `model` (not yet fitted: call {@link OODDetector.fit} before `score` or `predict`).
   * @throws HVAEError `ERR_HVAE_OPTION` for an option out of range (e.g. `falsePositiveRate` outside (0, 1)).
   */
  constructor(private readonly model: HVAE, options: DetectorOptions = {}) {
    if (!model || typeof model.scores !== 'function') optionError('OODDetector needs an HVAE model as its first argument');
    if (options === null || typeof options !== 'object' || Array.isArray(options)) optionError('OODDetector options must be an object');
    for (const key of Object.keys(options)) {
      if (!DETECTOR_KEYS.includes(key)) optionError(`unknown OODDetector option '${key}'; known: ${DETECTOR_KEYS.join(', ')}`);
    }
    if (options.k !== undefined) {
      const L = model.numLayers;
      if (!Array.isArray(options.k) || options.k.length === 0 || !options.k.every((k) => Number.isInteger(k) && k >= 0 && k <= L)) {
        optionError(`k must be a non-empty array of integers in 0..${L}, got ${JSON.stringify(options.k)}`);
      }
    }
    const fpr = options.falsePositiveRate ?? 0.05;
    if (!(fpr > 0 && fpr < 1)) optionError('falsePositiveRate must be in (0, 1)');
    const cf = options.calibrationFraction ?? 0.5;
    if (!(cf > 0 && cf < 1)) optionError('calibrationFraction must be in (0, 1)');
    this.options = {
      k: options.k, importanceSamples: options.importanceSamples ?? 1, transform: options.transform ?? 'auto',
      falsePositiveRate: fpr, calibrationFraction: cf, seed: options.seed ?? 0, batchSize: options.batchSize ?? 500,
    };
  }

  /** The k tested. */
  get ks(): number[] {
    return this.state?.k ?? this.options.k ?? Array.from({ length: this.model.numLayers - 1 }, (_, i) => i + 1);
  }

  /** Whether the detector is calibrated. */
  get fitted(): boolean {
    return this.state !== null;
  }

  /** The calibration, for saving. */
  toJSON(): DetectorState {
    if (!this.state) throw new HVAEError('ERR_HVAE_OPTION', 'the detector is not fitted');
    return this.state;
  }

  /** Restores a calibration made by {@link OODDetector.toJSON}. */
  static fromJSON(model: HVAE, state: DetectorState): OODDetector {
    if (!state || typeof state !== 'object' || !Array.isArray(state.k) || typeof state.threshold !== 'number' || !state.reference ||
        typeof state.reference !== 'object') {
      throw new HVAEError('ERR_HVAE_FORMAT', 'not a detector calibration');
    }
    let d: OODDetector;
    try {
      d = new OODDetector(model, { k: state.k, importanceSamples: state.importanceSamples, transform: state.transform, falsePositiveRate: state.falsePositiveRate });
    } catch (e) {
      throw new HVAEError('ERR_HVAE_FORMAT', `detector calibration does not fit this model: ${(e as Error).message}`, { cause: e });
    }
    d.state = state;
    if (!Number.isFinite(state.threshold)) throw new HVAEError('ERR_HVAE_FORMAT', `detector calibration has a non-finite threshold (${state.threshold})`);
    for (const k of state.k) {
      const ref = state.reference[String(k)];
      if (!Array.isArray(ref) || ref.length === 0) throw new HVAEError('ERR_HVAE_FORMAT', `detector calibration lacks the reference of k = ${k}`);
      if (!ref.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw new HVAEError('ERR_HVAE_FORMAT', `detector calibration: the reference of k = ${k} holds values that are not finite numbers`);
      }
      d.sorted.set(k, Float32Array.from(ref).sort());
    }
    return d;
  }

  private async llrs(input: ImageBatch | Dataset | AsyncIterable<ImageBatch>): Promise<Record<number, Float32Array>> {
    const ks = this.ks;
    const parts: Record<number, Float32Array[]> = {};
    for (const k of ks) parts[k] = [];
    for await (const b of asBatches(input, this.options.batchSize)) {
      const s = await this.model.scores(b, { k: ks, importanceSamples: this.options.importanceSamples, transform: this.options.transform });
      for (const k of ks) parts[k].push(s.llr[k]);
    }
    const out: Record<number, Float32Array> = {};
    for (const k of ks) {
      const n = parts[k].reduce((a, p) => a + p.length, 0);
      const a = new Float32Array(n);
      let o = 0;
      for (const p of parts[k]) { a.set(p, o); o += p.length; }
      out[k] = a;
    }
    return out;
  }

  private deviations(llr: Record<number, Float32Array>): DetectorScores {
    const ks = this.ks;
    const n = llr[ks[0]].length;
    const score = new Float32Array(n).fill(Number.NEGATIVE_INFINITY);
    const kk = new Int32Array(n);
    const deviation: Record<number, Float32Array> = {};
    for (const k of ks) {
      const ref = this.sorted.get(k)!;
      const N = ref.length;
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const atLeast = N - upperBound(ref, llr[k][i]) + countEqual(ref, llr[k][i]);
        const p = (1 + atLeast) / (N + 1);
        d[i] = -Math.log10(p);
        if (d[i] > score[i]) { score[i] = d[i]; kk[i] = k; }
      }
      deviation[k] = d;
    }
    return { score, k: kk, deviation, llr };
  }

  /**
   * Calibrates on in-distribution data: part of it becomes the per-k reference distributions, the rest sets
   * the threshold at the chosen false-positive rate. Accepts a Dataset, one batch, or an async iterable of batches.
   */
  async fit(idValidation: ImageBatch | Dataset | AsyncIterable<ImageBatch>): Promise<this> {
    let refInput: ImageBatch | Dataset | AsyncIterable<ImageBatch> = idValidation;
    let calInput: ImageBatch | Dataset | AsyncIterable<ImageBatch> | undefined;
    let all: Record<number, Float32Array> | undefined;
    const ds = idValidation as Partial<Dataset>;
    if (isDataset(idValidation)) {
      const d = idValidation;
      if (d.length < 20) throw new HVAEError('ERR_HVAE_DATA', `${d.name}: at least 20 in-distribution images are needed to fit the detector`);
      const perm = permutation(d.length, `${this.options.seed}:detector`);
      const nCal = Math.max(1, Math.round(d.length * this.options.calibrationFraction));
      calInput = subset(d, perm.slice(0, nCal), `${d.name} (calibration)`);
      refInput = subset(d, perm.slice(nCal), `${d.name} (reference)`);
    } else {
      all = await this.llrs(idValidation);
    }
    let ref: Record<number, Float32Array>;
    let cal: Record<number, Float32Array>;
    if (all) {
      const n = all[this.ks[0]].length;
      if (n < 20) throw new HVAEError('ERR_HVAE_DATA', 'at least 20 in-distribution images are needed to fit the detector');
      const perm = permutation(n, `${this.options.seed}:detector`);
      const nCal = Math.max(1, Math.round(n * this.options.calibrationFraction));
      ref = {};
      cal = {};
      for (const k of this.ks) {
        cal[k] = Float32Array.from(perm.slice(0, nCal), (i) => all![k][i]);
        ref[k] = Float32Array.from(perm.slice(nCal), (i) => all![k][i]);
      }
    } else {
      ref = await this.llrs(refInput);
      cal = await this.llrs(calInput!);
    }
    this.sorted = new Map(this.ks.map((k) => [k, Float32Array.from(ref[k]).sort()]));
    const calScores = Float32Array.from(this.deviations(cal).score).sort();
    // Threshold: the (1 - fpr) quantile of the calibration scores; images scoring above it are flagged.
    const q = Math.min(calScores.length - 1, Math.ceil((1 - this.options.falsePositiveRate) * calScores.length) - 1);
    const threshold = calScores[Math.max(0, q)];
    this.state = {
      k: this.ks, importanceSamples: this.options.importanceSamples, transform: this.options.transform,
      falsePositiveRate: this.options.falsePositiveRate, threshold,
      reference: Object.fromEntries(this.ks.map((k) => [String(k), Array.from(this.sorted.get(k)!)])),
      fittedOn: ds.name ?? 'batch', nReference: this.sorted.get(this.ks[0])!.length, nCalibration: calScores.length,
    };
    return this;
  }

  /** Per-image detector scores (higher = more OOD) with the deviating k and the per-k details. */
  async score(images: ImageBatch | Dataset | AsyncIterable<ImageBatch>): Promise<DetectorScores> {
    if (!this.state) throw new HVAEError('ERR_HVAE_OPTION', 'fit the detector before scoring');
    return this.deviations(await this.llrs(images));
  }

  /** Scores from LLR>k values computed elsewhere (e.g. by HVAE.scores with the same settings). */
  scoreLlr(llr: Record<number, Float32Array>): DetectorScores {
    if (!this.state) throw new HVAEError('ERR_HVAE_OPTION', 'fit the detector before scoring');
    if (llr === null || typeof llr !== 'object') optionError('scoreLlr needs { [k]: Float32Array } of LLR>k values');
    let n = -1;
    for (const k of this.ks) {
      const v = llr[k];
      if (!v || typeof v.length !== 'number') optionError(`LLR>${k} is missing`);
      if (n >= 0 && v.length !== n) throw new HVAEError('ERR_HVAE_SHAPE', `LLR>${k} has ${v.length} values but LLR>${this.ks[0]} has ${n}`);
      n = v.length;
      const bad = firstNonFinite(v);
      if (bad >= 0) throw new HVAEError('ERR_HVAE_NONFINITE', `LLR>${k}[${bad}] is ${v[bad]}; the detector needs finite LLRs`);
    }
    return this.deviations(llr);
  }

  /** Decisions at the calibrated threshold: `isOOD[i] = 1` when score > threshold. */
  async predict(images: ImageBatch | Dataset | AsyncIterable<ImageBatch>): Promise<DetectorPredictions> {
    const s = await this.score(images);
    return this.decide(s);
  }

  /** Decisions for scores computed by {@link OODDetector.scoreLlr}. */
  decide(s: DetectorScores): DetectorPredictions {
    if (!this.state) throw new HVAEError('ERR_HVAE_OPTION', 'fit the detector before deciding');
    if (!s || !(s.score instanceof Float32Array)) optionError('decide needs the DetectorScores of score() or scoreLlr()');
    const threshold = this.state.threshold;
    const isOOD = new Uint8Array(s.score.length);
    for (let i = 0; i < isOOD.length; i++) isOOD[i] = s.score[i] > threshold ? 1 : 0;
    return { ...s, isOOD, threshold };
  }
}

function countEqual(sorted: Float32Array, v: number): number {
  // elements == v (they count as ">= v" in the right tail)
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < v) lo = mid + 1; else hi = mid;
  }
  let c = 0;
  for (let i = lo; i < sorted.length && sorted[i] === v; i++) c++;
  return c;
}

/** Saves the model together with the detector's calibration (metadata key `detector`), atomically. */
export function saveWithDetector(model: HVAE, detector: OODDetector, file: string, metadata: Record<string, string> = {}): void {
  model.save(file, { metadata: { ...metadata, detector: JSON.stringify(detector.toJSON()) } });
}

/** Loads the detector calibration stored with a model checkpoint. Throws `ERR_HVAE_FORMAT` if there is none. */
export function loadDetector(model: HVAE, file: string): OODDetector {
  const { HVAE: HVAEClass } = require('./model.js') as typeof import('./model.js');
  const meta = HVAEClass.readMetadata(file);
  if (!meta.detector) throw new HVAEError('ERR_HVAE_FORMAT', `${file} has no detector calibration (fit one and save it with saveWithDetector)`);
  let state: DetectorState;
  try {
    state = JSON.parse(meta.detector) as DetectorState;
  } catch (e) {
    throw new HVAEError('ERR_HVAE_FORMAT', `${file}: the detector calibration is not valid JSON`, { cause: e });
  }
  return OODDetector.fromJSON(model, state);
}
