/**
 * hvae-native: hierarchical VAEs that know what they don't know (Havtorn et al., ICML 2021), for Node.js.
 *
 * ```ts
 * import { HVAE } from 'hvae-native';
 * const model = HVAE.create({ preset: 'fashionmnist' });
 * ```
 */
import { CpuCacheStats, loadNative, NativeVersions, nativePath, preloadedTorch } from './native.js';
import { fromNative, HVAEError } from './errors.js';

export { HVAE, MAX_IMPORTANCE_SAMPLES } from './model.js';
export type {
  Device, InputTransform, CreateOptions, ScoreOptions, Scores, GenerateOptions, SaveOptions, LoadOptions,
  TrainStepOptions, TrainStepResult,
} from './model.js';
export { HVAEError } from './errors.js';
export type { HVAEErrorCode } from './errors.js';
export type { CpuCacheStats } from './native.js';
export { preset, presetNames, resolveConfig, validateConfig, latentShapes, dataDims } from './config.js';
export type { HVAEConfig, StageConfig, LatentConfig, PresetName, ConfigInput } from './config.js';
export type { ImageBatch, ImageData, FloatTensor } from './tensor.js';
export { validateImageBatch } from './tensor.js';
export * from './metrics.js';
export { readSafetensors, writeSafetensors, writeFileAtomic } from './safetensors.js';
export type { SafeTensor, SafeTensorsFile, SafeDType } from './safetensors.js';
export type { NativeTensor } from './native.js';

/** Package, LibTorch and device facts. */
export interface Versions extends NativeVersions {
  /** This package's version. */
  package: string;
  /** The loaded addon file. */
  addon: string;
}

/**
 * Versions and runtime facts: package, LibTorch (version, path, cpu/cuda flavour), CUDA availability, device
 * count, cuDNN. Loads the addon on first access (throws `ERR_HVAE_LOAD` with an explanation if it cannot).
 */
export function getVersions(): Versions {
  const v = loadNative().versions();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkg = require('../package.json') as { version: string };
  // A relocatable prebuild reports the LibTorch folder of the machine that built it; say which one it runs on.
  const t = preloadedTorch();
  const where = t
    ? { libtorchPath: t.lib, libtorchSource: `preloaded from ${t.source === 'LIBTORCH' ? 'LIBTORCH' : `the torch package of ${t.source}`} (LibTorch ${t.version}; prebuilt against ${v.libtorchPath})` }
    : {};
  return { package: pkg.version, addon: nativePath() ?? '', ...v, ...where };
}

/** The same as {@link getVersions}, as a property: `require('hvae-native').versions`. */
export declare const versions: Versions;
// A getter in the one form Node's CommonJS export detection accepts, so `import { versions } from 'hvae-native'`
// works too; the addon is loaded on first access.
const lazy = { get versions(): Versions { return getVersions(); } };
Object.defineProperty(exports, 'versions', { enumerable: true, get: function () { return lazy.versions; } });

/** A device as {@link devices} reports it. */
export interface DeviceInfo {
  /** Device string to pass as `device`. */
  device: string;
  /** 'cpu' or 'cuda'. */
  type: 'cpu' | 'cuda';
  /** CUDA device index. */
  index?: number;
}

/** The devices this process can use: always 'cpu', plus 'cuda:N' for each visible CUDA device. */
export function devices(): DeviceInfo[] {
  const v = loadNative().versions();
  const out: DeviceInfo[] = [{ device: 'cpu', type: 'cpu' }];
  for (let i = 0; i < v.cudaDeviceCount; i++) out.push({ device: `cuda:${i}`, type: 'cuda', index: i });
  return out;
}

/**
 * Sets the number of intra-op CPU threads LibTorch uses (process-wide). `n <= 0` means all cores (the default;
 * Debian's LibTorch would otherwise start with one). `HVAE_NUM_THREADS` or `OMP_NUM_THREADS` set the initial value.
 * Returns the value in effect.
 */
export function setNumThreads(n: number): number {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new HVAEError('ERR_HVAE_OPTION', 'setNumThreads(n) needs a number');
  if (Math.abs(n) > 65536) throw new HVAEError('ERR_HVAE_OPTION', `setNumThreads(n): ${n} threads is out of range (at most 65536)`);
  try { return loadNative().setNumThreads(Math.trunc(n)); } catch (e) { throw fromNative(e); }
}

/**
 * CUDA settings (process-wide; no effect on CPU).
 * - `benchmark`: cuDNN autotuning for the fixed shapes of each call. On by default: a CUDA model turns it on
 *   when it is created or loaded, until this call chooses; after `setCudnn({ benchmark: false })` it stays off.
 * - `allowTF32`: let cuDNN and cuBLAS run float32 convolutions and matrix products in TF32 (10-bit mantissa; faster
 *   on Ampere and later GPUs). Off by default, so float32 scores are float32 as the contract says; LibTorch's own
 *   default (and PyTorch's, for convolutions) is on. For reduced precision with a measured accuracy cost see
 *   the `precision` option of {@link HVAE.scores}.
 */
export function setCudnn(options: { benchmark?: boolean; allowTF32?: boolean }): void {
  if (!options || typeof options !== 'object') throw new HVAEError('ERR_HVAE_OPTION', 'setCudnn needs { benchmark?, allowTF32? }');
  for (const [k, v] of Object.entries(options)) {
    if (k !== 'benchmark' && k !== 'allowTF32') throw new HVAEError('ERR_HVAE_OPTION', `setCudnn: unknown option '${k}'`);
    if (typeof v !== 'boolean') throw new HVAEError('ERR_HVAE_OPTION', `setCudnn: ${k} must be a boolean`);
  }
  try { loadNative().setCudnn(options); } catch (e) { throw fromNative(e); }
}

/**
 * CPU memory kept for reuse between training steps (process-wide). Blocks of 1 MiB and more that a training step
 * frees are kept for the next step: without that, the C library returns each step's working set to the kernel and
 * the next step pays to fault it in again (the computation runs on worker threads, whose malloc arenas do that),
 * which cost a third of a training step's time on CPU. Scoring reuses cached blocks but does not add to the cache.
 * The cache never holds more than `maxBytes`, nor lets the footprint exceed 1.5 times the most memory that was
 * live at once; {@link fit} empties it when it returns.
 * - `maxBytes`: the limit on cached bytes. The default is `HVAE_CPU_CACHE_MB` (MiB) or else the smaller of 4 GiB and
 *   a quarter of RAM. 0 stops caching and releases what is held. `HVAE_CPU_CACHE_MB=0` at start-up leaves
 *   LibTorch's own allocator in place.
 * - `empty`: release what is cached now (for example after training, before a long idle period).
 */
export function setCpuCache(options: { maxBytes?: number; empty?: boolean }): void {
  if (!options || typeof options !== 'object') throw new HVAEError('ERR_HVAE_OPTION', 'setCpuCache needs { maxBytes?, empty? }');
  for (const [k, v] of Object.entries(options)) {
    if (k === 'maxBytes') {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        throw new HVAEError('ERR_HVAE_OPTION', `setCpuCache: maxBytes must be an integer in 0..2^53-1, got ${String(v)}`);
      }
    } else if (k === 'empty') {
      if (typeof v !== 'boolean') throw new HVAEError('ERR_HVAE_OPTION', 'setCpuCache: empty must be a boolean');
    } else {
      throw new HVAEError('ERR_HVAE_OPTION', `setCpuCache: unknown option '${k}'`);
    }
  }
  try { loadNative().setCpuCache(options); } catch (e) { throw fromNative(e); }
}

/** What the CPU memory cache of {@link setCpuCache} holds now, and how often it was hit. */
export function cpuCache(): CpuCacheStats {
  return loadNative().cpuCache();
}

/** The number of intra-op CPU threads in effect. */
export function getNumThreads(): number {
  return loadNative().getNumThreads();
}

export * from './data/index.js';
export { fit, Trainer, resolveFitOptions, evaluateElbo } from './train.js';
export type { FitOptions, FitResult, ProgressEvent, EpochEvent, ResolvedFitOptions } from './train.js';
export { klWarmup, freeNatsSchedule } from './schedules.js';
export { evaluateOOD, scoreDataset, compareSets, equalSizePairs, reportMarkdown, reportJson } from './evaluate.js';
export type { EvaluateOptions, EvaluationReport, EvaluationRow, SetScores } from './evaluate.js';
export { OODDetector, saveWithDetector, loadDetector } from './detector.js';
export type { DetectorOptions, DetectorScores, DetectorPredictions, DetectorState } from './detector.js';
export { writeImageGrid, imageGrid } from './images.js';
export * from './plots.js';
export { runEvaluation, latentReconstructions } from './report.js';
export type { RunEvaluationOptions, RunEvaluationResult } from './report.js';
