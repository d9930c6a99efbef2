/**
 * The training loop (ALGORITHM.md §3 and §5): epochs of Adam steps run in C++, the paper's KL warm-up and
 * free-nats schedules, a held-out validation split for checkpoint selection, atomic best/last checkpoints with
 * everything `resume` needs, progress events, a JSONL metrics log and periodic image grids.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { mkdirp } from './safetensors.js';
import * as path from 'node:path';
import { HVAEError, oneOf, optionError } from './errors.js';
import { loadNative } from './native.js';
import { deviceKind, FREE_NATS_MODES, INPUT_TRANSFORMS, PRECISIONS, type HVAE, type InputTransform } from './model.js';
import { batches, Dataset, splitTrainValidation } from './data/stream.js';
import { klWarmup, freeNatsSchedule } from './schedules.js';
import { writeImageGrid } from './images.js';
import { oodMetrics } from './metrics.js';
import type { ImageBatch } from './tensor.js';

/** Options of {@link fit}. Every field is optional; defaults follow the paper and the official code. */
export interface FitOptions {
  /** Total number of epochs (the reference trains 1000 for FashionMNIST). Default 1000. */
  epochs?: number;
  /** Images per step. Default 128. */
  batchSize?: number;
  /** Adam learning rate. Default 3e-4. */
  lr?: number;
  /** Adam betas. Default [0.9, 0.999]. */
  betas?: [number, number];
  /** KL warm-up epochs: beta_e = min(1, e / warmupEpochs). Default 200. */
  warmupEpochs?: number;
  /** Free nats lambda at the start. Default 2. */
  freeNats?: number;
  /** Epochs with constant free nats. Default 200. */
  freeNatsConstantEpochs?: number;
  /** Epochs over which free nats fall linearly to 0. Default 200. */
  freeNatsCooldownEpochs?: number;
  /** Free-nats rule (ALGORITHM.md §3.2). Default `'reference'`. */
  freeNatsMode?: 'reference' | 'layer-total' | 'paper-era';
  /**
   * How training images are binarized (Bernoulli models):
   * - `'dynamic'` (default, the paper's intent): a fresh Bernoulli draw every time an image is used;
   * - `'static'`: one fixed draw per image (what the official code effectively does, §1.3), seeded by `seed`.
   */
  binarization?: 'dynamic' | 'static';
  /** Input transform (default `'auto'`: binarize for Bernoulli, dequantize for DLM). */
  transform?: InputTransform;
  /**
   * Arithmetic of the training steps (see {@link TrainStepOptions.precision}): `'float32'` (default, the
   * contract's) or `'bfloat16'` mixed precision (float32 weights, gradients, Adam and loss; bfloat16 layers).
   * Validation and monitoring always score in float32. Recorded in every epoch event and in the checkpoints.
   */
  precision?: 'float32' | 'bfloat16';
  /**
   * Validation data for checkpoint selection: a number of images held out of `train` by seeded random split
   * (default 5000) or a fraction in (0, 1) of `train`, a separate dataset, or `false` for none. The test split is never used.
   */
  validation?: number | Dataset | false;
  /** Seed of the train/validation split. Default 0. */
  splitSeed?: number;
  /** Evaluate the validation ELBO every N epochs. Default 1. */
  validateEvery?: number;
  /** Images of the validation set scored per evaluation (all by default). */
  validationLimit?: number;
  /** Sets scored every `monitorEvery` epochs and logged (LLR AUROC vs the validation set); never used for selection. */
  monitor?: { name: string; data: Dataset }[];
  /** Default 10. */
  monitorEvery?: number;
  /** Images per monitor set. Default 2000. */
  monitorLimit?: number;
  /** Seed of the shuffle (per epoch) and of the model's random stream for a fresh run. Default 0. */
  seed?: number;
  /** Directory for best.safetensors, last.safetensors, metrics.jsonl and image grids. Default: none (no files). */
  checkpointDir?: string;
  /** Save last.safetensors every N epochs (and always at the end or on abort). Default 1. */
  saveEvery?: number;
  /**
   * Continue from `checkpointDir/last.safetensors` (true) or from a given checkpoint file. Default false. The weights,
   * Adam moments, RNG state and progress come from the checkpoint; the validation split (`validation` count and
   * `splitSeed`) must be the checkpoint's (`ERR_HVAE_OPTION` otherwise). A different `seed` or `batchSize` (the batch
   * order) or a different schedule, `lr`, `betas`, `binarization`, `transform` or `precision` (what is optimised) is
   * allowed with a warning (`HVAE_RESUME_ORDER`, `HVAE_RESUME_OBJECTIVE`); every option that differs from the
   * checkpoint's is logged in the `resumed` event of `metrics.jsonl` as `changed: { name: [checkpoint's, now] }`.
   * That event is written at every resume, with the epoch in progress, the steps of it already done, the global step
   * and the file resumed from (`from`).
   */
  resume?: boolean | string;
  /** Write sample and reconstruction grids every N epochs (0 = never). Default 10. */
  imagesEvery?: number;
  /** Stop after this many steps per epoch (for quick runs on subsets). Default: the whole epoch. */
  maxStepsPerEpoch?: number;
  /** Stop the whole run after this many steps (the state is saved as on abort). Default: none. */
  maxSteps?: number;
  /** Skip batches with a non-finite loss (counted) instead of failing. Default false. */
  skipNonFinite?: boolean;
  /** Aborts training at the end of the current step; the state is saved and `fit` resolves with `aborted`. */
  signal?: AbortSignal;
  /** Called with every progress event (also emitted as 'progress' by {@link Trainer}). */
  onProgress?: (event: ProgressEvent) => void;
  /** Called after every epoch with its summary. */
  onEpoch?: (event: EpochEvent) => void;
}

/** One training step's progress. */
export interface ProgressEvent {
  /** Always `'step'` (tells it from an {@link EpochEvent}). */
  type: 'step';
  /** The epoch this step belongs to (1-based). */
  epoch: number;
  /** The epoch the run ends at ({@link FitOptions.epochs}). */
  epochs: number;
  /** Optimiser steps taken since the model's training began (counts across resumes). */
  step: number;
  /** This step's position in its epoch (1-based). */
  stepInEpoch: number;
  /** Steps in one epoch (training images / batch size, or {@link FitOptions.maxStepsPerEpoch}). */
  stepsPerEpoch: number;
  /** The minimised loss of this step's batch, mean per image in nats (beta-weighted KL with free bits). */
  loss: number;
  /** The ELBO of this step's batch, mean per image in nats (single-sample; higher is better). */
  elbo: number;
  /** KL per latent layer (z1 first), mean per image in nats, before beta and free bits. */
  kl: number[];
  /** The KL weight of the warm-up at this step (ALGORITHM.md section 5). */
  beta: number;
  /** The free-bits threshold at this step, in nats. */
  freeNats: number;
  /** Training throughput of this run so far (images per second). */
  imagesPerSecond: number;
  /** Estimated seconds to the end of the run at the current rate. */
  etaSeconds: number;
}

/** One epoch's summary. */
export interface EpochEvent {
  /** Always `'epoch'` (tells it from a {@link ProgressEvent}). */
  type: 'epoch';
  /** The finished epoch (1-based). */
  epoch: number;
  /** Optimiser steps taken since the model's training began. */
  step: number;
  /** Mean training loss per image over the epoch's images (nats; the part run since a resume). */
  loss: number;
  /** Mean training ELBO per image over the epoch's images (nats). */
  elbo: number;
  /** Mean KL per latent layer (z1 first) over the epoch (nats per image). */
  kl: number[];
  /** The KL weight at the epoch's last step. */
  beta: number;
  /** The free-bits threshold at the epoch's last step (nats). */
  freeNats: number;
  /** Wall-clock seconds of the epoch's training steps. */
  seconds: number;
  /** Training images per second over the epoch. */
  imagesPerSecond: number;
  /** Arithmetic of this epoch's training steps ({@link FitOptions.precision}). */
  precision: 'float32' | 'bfloat16';
  /** The ELBO of the validation split (nats per image), when validation ran this epoch. */
  validationElbo?: number;
  /** The same in bits per dimension. */
  validationBitsPerDim?: number;
  /** Whether this epoch set a new best validation ELBO (and, with a checkpoint folder, `best.safetensors` was written). */
  best: boolean;
  /**
   * Batches skipped so far for a non-finite loss ({@link FitOptions.skipNonFinite}): a running total over the run,
   * kept across resumes, not a count for this epoch alone.
   */
  skippedBatches: number;
  /** The monitored OOD AUROCs by dataset and score, when {@link FitOptions.monitor} is set and ran this epoch. */
  monitor?: Record<string, Record<string, number>>;
}

/** Result of {@link fit}. */
export interface FitResult {
  /** Epochs completed in total (including earlier runs when resumed). */
  epoch: number;
  /** Global step count. */
  step: number;
  /** Best validation ELBO so far (nats), if validated. */
  bestValidationElbo?: number;
  /** Epoch of the best validation ELBO. */
  bestEpoch?: number;
  /** Whether training stopped early on an abort signal or `maxSteps`. */
  aborted: boolean;
  /** Batches skipped because of a non-finite loss. */
  skippedBatches: number;
  /** Files written. */
  files: { best?: string; last?: string; metrics?: string };
}

const KEYS = new Set(['epochs', 'batchSize', 'lr', 'betas', 'warmupEpochs', 'freeNats', 'freeNatsConstantEpochs',
  'freeNatsCooldownEpochs', 'freeNatsMode', 'binarization', 'transform', 'precision', 'validation', 'splitSeed', 'validateEvery',
  'validationLimit', 'monitor', 'monitorEvery', 'monitorLimit', 'seed', 'checkpointDir', 'saveEvery', 'resume',
  'imagesEvery', 'maxStepsPerEpoch', 'maxSteps', 'skipNonFinite', 'signal', 'onProgress', 'onEpoch']);

function intOpt(o: FitOptions, key: keyof FitOptions, def: number, min: number): number {
  const v = o[key] ?? def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) optionError(`${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function numOpt(o: FitOptions, key: keyof FitOptions, def: number, min: number, exclusive = false): number {
  const v = o[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v) || (exclusive ? v <= min : v < min)) {
    optionError(`${key} must be a number ${exclusive ? '>' : '>='} ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Validated options with defaults (what is stored in checkpoints for resume): every {@link FitOptions} field that
 * shapes the run, resolved to its value (same names and meanings as in {@link FitOptions}; `null` where the option
 * means "none" or "all").
 */
export interface ResolvedFitOptions {
  epochs: number; batchSize: number; lr: number; betas: [number, number]; warmupEpochs: number; freeNats: number;
  freeNatsConstantEpochs: number; freeNatsCooldownEpochs: number; freeNatsMode: 'reference' | 'layer-total' | 'paper-era';
  binarization: 'dynamic' | 'static'; transform: InputTransform; precision: 'float32' | 'bfloat16'; validationCount: number | null; splitSeed: number;
  validateEvery: number; validationLimit: number | null; monitorEvery: number; monitorLimit: number; seed: number;
  saveEvery: number; imagesEvery: number; maxStepsPerEpoch: number | null; maxSteps: number | null; skipNonFinite: boolean;
}

/** Validates fit options before any work starts. Throws `ERR_HVAE_OPTION` naming the field. */
export function resolveFitOptions(o: FitOptions): ResolvedFitOptions {
  if (o === null || typeof o !== 'object') optionError('fit options must be an object');
  for (const k of Object.keys(o)) if (!KEYS.has(k)) optionError(`unknown fit option '${k}'`);
  const betas = o.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2 || betas.some((b) => typeof b !== 'number' || !(b >= 0 && b < 1))) {
    optionError('betas must be two numbers in [0, 1)');
  }
  const mode = oneOf(o.freeNatsMode, FREE_NATS_MODES, 'freeNatsMode', 'reference');
  const bin = oneOf(o.binarization, ['dynamic', 'static'] as const, 'binarization', 'dynamic');
  const precision = oneOf(o.precision, PRECISIONS, 'precision', 'float32');
  const transform = oneOf(o.transform, INPUT_TRANSFORMS, 'transform', 'auto');
  const v = o.validation ?? 5000;
  let validationCount: number | null = null;
  if (typeof v === 'number') {
    if (!(v > 0)) optionError('validation must be a positive count or fraction, a Dataset, or false');
    validationCount = v;
  } else if (v !== false && (typeof v !== 'object' || typeof (v as Dataset).read !== 'function')) {
    optionError('validation must be a number, a Dataset, or false');
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) optionError('signal must be an AbortSignal');
  for (const cb of ['onProgress', 'onEpoch'] as const) {
    if (o[cb] !== undefined && typeof o[cb] !== 'function') optionError(`${cb} must be a function, got ${typeof o[cb]}`);
  }
  if (o.skipNonFinite !== undefined && typeof o.skipNonFinite !== 'boolean') optionError(`skipNonFinite must be true or false, got ${JSON.stringify(o.skipNonFinite)}`);
  return {
    epochs: intOpt(o, 'epochs', 1000, 1),
    batchSize: intOpt(o, 'batchSize', 128, 1),
    lr: numOpt(o, 'lr', 3e-4, 0, true),
    betas: [betas[0], betas[1]],
    warmupEpochs: intOpt(o, 'warmupEpochs', 200, 0),
    freeNats: numOpt(o, 'freeNats', 2, 0),
    freeNatsConstantEpochs: intOpt(o, 'freeNatsConstantEpochs', 200, 0),
    freeNatsCooldownEpochs: intOpt(o, 'freeNatsCooldownEpochs', 200, 0),
    freeNatsMode: mode,
    binarization: bin,
    transform,
    precision,
    validationCount,
    splitSeed: intOpt(o, 'splitSeed', 0, 0),
    validateEvery: intOpt(o, 'validateEvery', 1, 1),
    validationLimit: o.validationLimit === undefined ? null : intOpt(o, 'validationLimit', 0, 1),
    monitorEvery: intOpt(o, 'monitorEvery', 10, 1),
    monitorLimit: intOpt(o, 'monitorLimit', 2000, 1),
    seed: intOpt(o, 'seed', 0, 0),
    saveEvery: intOpt(o, 'saveEvery', 1, 1),
    imagesEvery: intOpt(o, 'imagesEvery', 10, 0),
    maxStepsPerEpoch: o.maxStepsPerEpoch === undefined ? null : intOpt(o, 'maxStepsPerEpoch', 0, 1),
    maxSteps: o.maxSteps === undefined ? null : intOpt(o, 'maxSteps', 0, 1),
    skipNonFinite: !!o.skipNonFinite,
  };
}

interface TrainState {
  epoch: number;          // last completed epoch
  stepInEpoch: number;    // steps done in the epoch after `epoch` (non-zero only for a mid-epoch save)
  step: number;
  bestValidationElbo: number | null;
  bestEpoch: number | null;
  skippedBatches: number;
}

/** Mean of the values in a Float32Array. */
function mean(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}

/**
 * Trains `model` on `train`, as the paper. Resolves when all epochs are done, or early (with `aborted`) on the
 * abort signal or SIGINT, after saving the state.
 */
export async function fit(model: HVAE, train: Dataset, options: FitOptions = {}, emitter?: EventEmitter): Promise<FitResult> {
  const o = resolveFitOptions(options);
  const dir = options.checkpointDir ? path.resolve(options.checkpointDir) : undefined;
  if (!train || typeof train.read !== 'function') optionError('fit(train): train must be a Dataset');
  if (o.precision === 'bfloat16' && !model.supportsBFloat16) {
    throw new HVAEError('ERR_HVAE_DEVICE', "precision 'bfloat16' needs CUDA or a CPU with AVX-512 BF16 or AMX (this CPU has neither); use precision 'float32'");
  }
  const [c, h, w] = model.config.inputShape;
  if (train.shape[0] !== c || train.shape[1] !== h || train.shape[2] !== w) {
    throw new HVAEError('ERR_HVAE_SHAPE', `${train.name} has ${train.shape.join('x')} images but the model expects ${c}x${h}x${w}`);
  }
  if (dir) {
    try {
      mkdirp(dir);
      const probe = path.join(dir, `.write-test-${process.pid}`);
      fs.writeFileSync(probe, 'ok');
      fs.rmSync(probe);
    } catch (e) {
      throw new HVAEError('ERR_HVAE_IO', `checkpointDir ${dir} is not writable: ${(e as Error).message}`, { cause: e });
    }
  }

  // ---- resume ----
  const state: TrainState = { epoch: 0, stepInEpoch: 0, step: 0, bestValidationElbo: null, bestEpoch: null, skippedBatches: 0 };
  let resumeFile: string | undefined;
  let resumeNote: Record<string, unknown> | undefined;
  if (options.resume) {
    resumeFile = typeof options.resume === 'string' ? options.resume : dir ? path.join(dir, 'last.safetensors') : undefined;
    if (!resumeFile) optionError('resume: true needs checkpointDir');
  }
  if (resumeFile && fs.existsSync(resumeFile)) {
    const { HVAE: HVAEClass } = await import('./model.js');
    const meta = HVAEClass.readMetadata(resumeFile);
    if (!meta.trainState) throw new HVAEError('ERR_HVAE_FORMAT', `${resumeFile} has no training state to resume from`);
    const changed = checkResumeOptions(o, meta.fitOptions, resumeFile);
    const loaded = HVAEClass.load(resumeFile, { device: model.device });
    try {
      model.setState(loaded.getState());
    } catch (e) {
      loaded.dispose();
      throw e;
    }
    const native = model.nativeModel();
    const src = loaded.nativeModel();
    native.setOptimizerState(src.getOptimizerState());
    Object.assign(state, JSON.parse(meta.trainState) as TrainState);
    // Every resume is logged, where it continues in the same terms as the `aborted` event (the epoch in progress and
    // the steps of it already done), so that the metrics log shows each session of a run that spans many.
    resumeNote = { epoch: state.epoch + 1, stepInEpoch: state.stepInEpoch, step: state.step, from: resumeFile };
    if (loaded.rngStateRestored) {
      native.setRngState(src.getRngState());
    } else {
      // Saved on another kind of device (CPU state, CUDA model, say): the generator cannot take that state, so it
      // is reseeded from the run's seed and step. Weights, Adam moments and the data order (seeded by epoch)
      // resume exactly; the binarisation and posterior draws from here on differ from an uninterrupted run.
      model.seed(o.seed + state.step);
      resumeNote = { ...resumeNote, rngReseeded: true, rngDevice: meta.rngDevice ?? 'cpu', device: deviceKind(model.device), seed: o.seed + state.step };
    }
    if (changed) resumeNote = { ...resumeNote, changed };
    loaded.dispose();
  } else if (options.resume && typeof options.resume === 'string') {
    throw new HVAEError('ERR_HVAE_IO', `resume: ${resumeFile} does not exist`);
  } else {
    model.seed(o.seed);
  }

  // ---- data ----
  let trainSet = train;
  let validation: Dataset | undefined;
  if (options.validation !== false && options.validation !== undefined && typeof options.validation === 'object') {
    validation = options.validation;
  } else if (o.validationCount !== null) {
    const split = splitTrainValidation(train, { validation: o.validationCount, seed: o.splitSeed });
    trainSet = split.train;
    validation = split.validation;
  }
  const stepsPerEpochFull = Math.ceil(trainSet.length / o.batchSize);
  const stepsPerEpoch = o.maxStepsPerEpoch ? Math.min(o.maxStepsPerEpoch, stepsPerEpochFull) : stepsPerEpochFull;
  if (trainSet.length === 0) throw new HVAEError('ERR_HVAE_DATA', `${train.name}: no training images left after the validation split`);

  // Static binarization: one fixed draw per image, seeded (the official code's effective behaviour, §1.3).
  const staticBinarize = o.binarization === 'static' && model.config.likelihood === 'bernoulli';

  const metricsFile = dir ? path.join(dir, 'metrics.jsonl') : undefined;
  const log = (record: object): void => {
    if (metricsFile) fs.appendFileSync(metricsFile, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  };
  if (resumeNote) log({ event: 'resumed', ...resumeNote });
  const files: FitResult['files'] = {};
  const save = (name: 'best' | 'last'): string | undefined => {
    if (!dir) return undefined;
    const file = path.join(dir, `${name}.safetensors`);
    model.save(file, {
      trainingState: true,
      metadata: {
        trainState: JSON.stringify(state),
        fitOptions: JSON.stringify(o),
        trainData: train.name,
        trainImages: String(trainSet.length),
        validationImages: String(validation?.length ?? 0),
        savedAt: new Date().toISOString(),
      },
    });
    files[name] = file;
    return file;
  };

  // SIGINT ends the current step, saves and returns (only while this fit runs).
  const controller = new AbortController();
  // The listener stays until fit returns: a second SIGINT while the step finishes and the state is saved is absorbed
  // (with `once`, it would meet Node's default action and end the process unsaved; `timeout -s INT` sends two, one
  // to the process and one to its group).
  const onSigint = (): void => controller.abort(new Error('SIGINT'));
  process.on('SIGINT', onSigint);
  const userSignal = options.signal;
  const onUserAbort = (): void => controller.abort(userSignal?.reason);
  userSignal?.addEventListener('abort', onUserAbort, { once: true });
  const signal = controller.signal;
  if (userSignal?.aborted) controller.abort(userSignal.reason);

  const emit = (ev: ProgressEvent | EpochEvent): void => {
    if (ev.type === 'step') options.onProgress?.(ev);
    else options.onEpoch?.(ev);
    emitter?.emit(ev.type === 'step' ? 'progress' : 'epoch', ev);
  };

  let aborted = false;
  const t0 = Date.now();
  let stepsThisRun = 0;
  try {
    for (let epoch = state.epoch + 1; epoch <= o.epochs && !aborted; epoch++) {
      const beta = klWarmup(epoch, o.warmupEpochs);
      const lambda = freeNatsSchedule(epoch, o.freeNats, o.freeNatsConstantEpochs, o.freeNatsCooldownEpochs);
      const te = Date.now();
      let sumLoss = 0;
      let sumElbo = 0;
      let seen = 0;
      const sumKl: number[] = new Array(model.numLayers).fill(0);
      const skip = state.stepInEpoch;
      let stepInEpoch = 0;
      const iter = batches(trainSet, { batchSize: o.batchSize, shuffle: true, seed: `${o.seed}:${epoch}`, readAhead: 2 });
      for await (const b of iter) {
        if (stepInEpoch < skip) { stepInEpoch++; continue; } // resumed mid-epoch: these steps are done
        if (stepInEpoch >= stepsPerEpoch) break;
        let images: ImageBatch = b.images;
        let transform = o.transform;
        if (staticBinarize) {
          images = staticBinarization(b.images, b.indices, o.seed);
          transform = 'none';
        }
        let r;
        try {
          r = await model.trainStep(images, {
            beta, freeNats: lambda, freeNatsMode: o.freeNatsMode, lr: o.lr, beta1: o.betas[0], beta2: o.betas[1],
            transform, skipNonFinite: o.skipNonFinite, precision: o.precision,
          });
        } catch (e) {
          if (e instanceof HVAEError && e.code === 'ERR_HVAE_NONFINITE_LOSS') {
            throw new HVAEError('ERR_HVAE_NONFINITE_LOSS',
              `training stopped at epoch ${epoch}, step ${stepInEpoch + 1} of ${stepsPerEpoch} (global step ${state.step + 1}): ${e.message}; ` +
              `the last good checkpoint is kept${dir ? ` in ${dir}` : ''} (skipNonFinite: true skips such batches)`, { cause: e });
          }
          throw e;
        }
        stepInEpoch++;
        state.stepInEpoch = stepInEpoch;
        state.step++;
        stepsThisRun++;
        if (r.skipped) {
          state.skippedBatches++;
        } else {
          const n = images.shape[0];
          sumLoss += r.lossMean * n;
          sumElbo += r.elboMean * n;
          r.kl.forEach((k, i) => { sumKl[i] += mean(k) * n; });
          seen += n;
        }
        const elapsed = (Date.now() - t0) / 1000;
        const perStep = elapsed / stepsThisRun;
        const remaining = (o.epochs - epoch) * stepsPerEpoch + (stepsPerEpoch - stepInEpoch);
        emit({
          type: 'step', epoch, epochs: o.epochs, step: state.step, stepInEpoch, stepsPerEpoch,
          loss: r.lossMean, elbo: r.elboMean, kl: r.kl.map(mean), beta, freeNats: lambda,
          imagesPerSecond: (stepsThisRun * o.batchSize) / Math.max(elapsed, 1e-9), etaSeconds: remaining * perStep,
        });
        if (signal.aborted || (o.maxSteps !== null && state.step >= o.maxSteps)) {
          aborted = true;
          break;
        }
      }
      if (aborted && stepInEpoch < stepsPerEpoch) {
        state.epoch = epoch - 1; // the epoch is not complete: resume continues inside it
        save('last');
        log({ event: 'aborted', epoch, stepInEpoch, step: state.step });
        break;
      }
      // ---- end of epoch ----
      state.epoch = epoch;
      state.stepInEpoch = 0;
      const seconds = (Date.now() - te) / 1000;
      const ev: EpochEvent = {
        type: 'epoch', epoch, step: state.step, loss: sumLoss / Math.max(seen, 1), elbo: sumElbo / Math.max(seen, 1),
        kl: sumKl.map((k) => k / Math.max(seen, 1)), beta, freeNats: lambda, seconds,
        imagesPerSecond: seen / Math.max(seconds, 1e-9), precision: o.precision, best: false, skippedBatches: state.skippedBatches,
      };
      if (validation && (epoch % o.validateEvery === 0 || epoch === o.epochs)) {
        const v = await evaluateElbo(model, validation, o.validationLimit ?? validation.length, o.transform);
        ev.validationElbo = v;
        ev.validationBitsPerDim = -v / (c * h * w * Math.LN2);
        if (state.bestValidationElbo === null || v > state.bestValidationElbo) {
          state.bestValidationElbo = v;
          state.bestEpoch = epoch;
          ev.best = true;
          save('best');
        }
      } else if (!validation && dir) {
        save('best');
      }
      if (validation && options.monitor?.length && epoch % o.monitorEvery === 0) {
        ev.monitor = await monitorSets(model, validation, options.monitor, o.monitorLimit, o.transform);
      }
      if (dir && o.imagesEvery > 0 && (epoch % o.imagesEvery === 0 || epoch === o.epochs)) {
        await writeTrainingImages(model, validation ?? trainSet, dir, epoch, o.transform);
      }
      if (epoch % o.saveEvery === 0 || epoch === o.epochs || aborted) save('last');
      log({ event: 'epoch', ...ev });
      emit(ev);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    userSignal?.removeEventListener('abort', onUserAbort);
    // The training steps' working set was kept for reuse between steps (setCpuCache); give it back now.
    loadNative().setCpuCache({ empty: true });
  }
  if (metricsFile) files.metrics = metricsFile;
  return {
    epoch: state.epoch, step: state.step, bestValidationElbo: state.bestValidationElbo ?? undefined,
    bestEpoch: state.bestEpoch ?? undefined, aborted, skippedBatches: state.skippedBatches, files,
  };
}

/** Mean ELBO (nats) over the first `limit` images of a dataset. */
export async function evaluateElbo(model: HVAE, data: Dataset, limit: number, transform: InputTransform = 'auto'): Promise<number> {
  let sum = 0;
  let n = 0;
  const max = Math.min(limit, data.length);
  for await (const b of batches(data, { batchSize: 500 })) {
    const take = Math.min(b.images.shape[0], max - n);
    if (take <= 0) break;
    const imgs = take === b.images.shape[0] ? b.images : { data: b.images.data.subarray(0, take * b.images.data.length / b.images.shape[0]), shape: [take, ...b.images.shape.slice(1)] as [number, number, number, number] };
    const e = await model.elbo(imgs, { transform });
    for (const v of e) sum += v;
    n += take;
    if (n >= max) break;
  }
  return sum / Math.max(n, 1);
}

async function scoreSet(model: HVAE, data: Dataset, limit: number, transform: InputTransform): Promise<{ elbo: number[]; llr: Record<number, number[]>; lk: Record<number, number[]> }> {
  const out = { elbo: [] as number[], llr: {} as Record<number, number[]>, lk: {} as Record<number, number[]> };
  const ks = Array.from({ length: model.numLayers }, (_, i) => i);
  for (const k of ks) { out.llr[k] = []; out.lk[k] = []; }
  for await (const b of batches(data, { batchSize: 500 })) {
    const s = await model.scores(b.images, { k: ks, transform });
    out.elbo.push(...s.elbo);
    for (const k of ks) { out.llr[k].push(...s.llr[k]); out.lk[k].push(...s.boundAboveK[k]); }
    if (out.elbo.length >= limit) break;
  }
  return out;
}

/** In-training OOD monitor: AUROC of -L>k and LLR>k between the validation set and each monitor set. */
async function monitorSets(model: HVAE, validation: Dataset, sets: { name: string; data: Dataset }[], limit: number, transform: InputTransform): Promise<Record<string, Record<string, number>>> {
  const ref = await scoreSet(model, validation, limit, transform);
  const out: Record<string, Record<string, number>> = {};
  for (const s of sets) {
    const o = await scoreSet(model, s.data, limit, transform);
    const n = Math.min(ref.elbo.length, o.elbo.length);
    const r: Record<string, number> = {};
    for (const k of Object.keys(ref.llr).map(Number)) {
      r[`auroc_L>${k}`] = oodMetrics(ref.lk[k].slice(0, n).map((v) => -v), o.lk[k].slice(0, n).map((v) => -v)).auroc;
      if (k > 0) r[`auroc_LLR>${k}`] = oodMetrics(ref.llr[k].slice(0, n), o.llr[k].slice(0, n)).auroc;
    }
    out[s.name] = r;
  }
  return out;
}

async function writeTrainingImages(model: HVAE, data: Dataset, dir: string, epoch: number, transform: InputTransform): Promise<void> {
  const imgDir = path.join(dir, 'images');
  const tag = String(epoch).padStart(4, '0');
  const samples = await model.generate({ n: 64 });
  await writeImageGrid(path.join(imgDir, `samples_${tag}.png`), samples, { columns: 8 });
  const b = await data.read(Array.from({ length: Math.min(32, data.length) }, (_, i) => i));
  const rec = await model.generate({ images: b.images, transform });
  await writeImageGrid(path.join(imgDir, `reconstructions_${tag}.png`), interleave(b.images, rec), { columns: 8 });
}

/** Originals (uint8) and their reconstructions in alternating rows of 8 (for grids). */
function interleave(orig: { data: Uint8Array; shape: number[] }, rec: { data: Float32Array; shape: number[] }): { data: Float32Array; shape: [number, number, number, number] } {
  const [n, c, h, w] = orig.shape;
  const per = c * h * w;
  const out = new Float32Array(2 * n * per);
  let o = 0;
  for (let r = 0; r < n; r += 8) {
    const m = Math.min(8, n - r);
    for (let i = 0; i < m; i++) for (let j = 0; j < per; j++) out[o++] = orig.data[(r + i) * per + j] / 255;
    for (let i = 0; i < m; i++) { out.set(rec.data.subarray((r + i) * per, (r + i + 1) * per), o); o += per; }
  }
  return { data: out, shape: [2 * n, c, h, w] };
}

/** Fixed binarization of uint8 images: the same draw for an image index every time (hash of seed and index). */
export function staticBinarization(images: { data: Uint8Array; shape: [number, number, number, number] }, indices: Int32Array, seed: number): { data: Float32Array; shape: [number, number, number, number] } {
  const [n, c, h, w] = images.shape;
  const per = c * h * w;
  const out = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    let s = ((Math.imul(indices[i] + 1, 0x9e3779b1) ^ Math.imul(seed + 0x632be5ab, 0x85ebca6b)) >>> 0) || 1;
    for (let j = 0; j < per; j++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      out[i * per + j] = (s / 4294967296) < images.data[i * per + j] / 255 ? 1 : 0;
    }
  }
  return { data: out, shape: images.shape };
}

/** Options that change what the run optimises from here on (the schedules, Adam, the inputs, the arithmetic). */
const OBJECTIVE_KEYS = ['lr', 'betas', 'warmupEpochs', 'freeNats', 'freeNatsConstantEpochs', 'freeNatsCooldownEpochs',
  'freeNatsMode', 'binarization', 'transform', 'precision'] as const;

/**
 * A resumed run must keep the validation split of the run it continues (`validationCount`, `splitSeed`): another
 * split would put images the model trained on into validation and bias checkpoint selection, so a change is refused.
 * A changed `seed` or `batchSize` only changes the order of the batches from here on (a deliberate branch, say, to
 * measure run-to-run noise); inside an epoch the batches already taken are then skipped by count from the new order.
 * A changed schedule, Adam setting, binarization, transform or precision (`OBJECTIVE_KEYS`: a deliberate branch too,
 * or a flag forgotten on the command line) changes what the run optimises from here on. Both are allowed and warned
 * about (`HVAE_RESUME_ORDER`, `HVAE_RESUME_OBJECTIVE`). Every option that differs, these and the rest (epochs,
 * validation cadence, ...), is returned as `{ name: [checkpoint's, now] }` for the `resumed` event of the metrics log.
 * Checkpoints without stored options pass.
 */
function checkResumeOptions(o: ResolvedFitOptions, stored: string | undefined, file: string): Record<string, [unknown, unknown]> | undefined {
  if (!stored) return undefined;
  let prev: Partial<ResolvedFitOptions>;
  try {
    prev = JSON.parse(stored) as Partial<ResolvedFitOptions>;
  } catch {
    return undefined;
  }
  const differs = (k: keyof ResolvedFitOptions) => prev[k] !== undefined && JSON.stringify(prev[k]) !== JSON.stringify(o[k]);
  const split = (['validationCount', 'splitSeed'] as const).filter(differs);
  if (split.length) {
    optionError(`resume from ${file}: ${split.map((k) => `${k} ${JSON.stringify(o[k])} differs from the checkpoint's ${JSON.stringify(prev[k])}`).join(', ')}; ` +
      'pass the values the run was started with (they fix the validation split), or start a new run');
  }
  const list = (keys: readonly (keyof ResolvedFitOptions)[]) => keys.map((k) => `${k} ${JSON.stringify(o[k])} (the checkpoint's: ${JSON.stringify(prev[k])})`).join(', ');
  const order = (['seed', 'batchSize'] as const).filter(differs);
  if (order.length) process.emitWarning(`resume from ${file}: ${list(order)} ${order.length > 1 ? 'change' : 'changes'} the order of the training batches from here on`, { code: 'HVAE_RESUME_ORDER' });
  const objective = OBJECTIVE_KEYS.filter(differs);
  if (objective.length) process.emitWarning(`resume from ${file}: ${list(objective)} ${objective.length > 1 ? 'change' : 'changes'} what the run optimises from here on`, { code: 'HVAE_RESUME_OBJECTIVE' });
  const changed = (Object.keys(o) as (keyof ResolvedFitOptions)[]).filter(differs);
  return changed.length ? Object.fromEntries(changed.map((k) => [k, [prev[k], o[k]] as [unknown, unknown]])) : undefined;
}

/** The training loop as an EventEmitter: 'progress' (every step) and 'epoch' events, `run()` resolves with the result. */
export class Trainer extends EventEmitter {
  /**
   * Prepares a run of `model` on `train`; nothing trains until {@link Trainer.run}. Throws `ERR_HVAE_OPTION` on invalid
   * options (checked here, before any work).
   */
  constructor(private readonly model: HVAE, private readonly train: Dataset, private readonly options: FitOptions = {}) {
    super();
    resolveFitOptions(options);
  }

  /** Runs the training; see {@link fit}. */
  run(): Promise<FitResult> {
    return fit(this.model, this.train, this.options, this);
  }
}
