/**
 * Typed errors. Every failure that crosses the public API is an {@link HVAEError} with a stable `code`, so callers
 * can branch on `err.code` instead of parsing messages.
 */

/** Stable error codes. The string values never change between releases. */
export type HVAEErrorCode =
  /** A tensor or image batch has the wrong shape, or does not fit the model's input shape. */
  | 'ERR_HVAE_SHAPE'
  /** A tensor or image batch has an unsupported element type. */
  | 'ERR_HVAE_DTYPE'
  /** Float input contains NaN or an infinity. */
  | 'ERR_HVAE_NONFINITE'
  /**
   * A value outside what the call takes: float pixel values outside [0, 1] (the model's input space; 8-bit pixels
   * go in as a Uint8Array), or elements that `writeIdx`'s dtype cannot hold.
   */
  | 'ERR_HVAE_RANGE'
  /** The requested device does not exist (e.g. `'cuda'` on a machine without CUDA). */
  | 'ERR_HVAE_DEVICE'
  /** The native addon or LibTorch could not be loaded. */
  | 'ERR_HVAE_LOAD'
  /**
   * A checkpoint or data file is truncated, corrupt, not in the expected format, or does not match the model.
   * (A missing checkpoint is `ERR_HVAE_IO`; a missing dataset is `ERR_HVAE_DATA`.)
   */
  | 'ERR_HVAE_FORMAT'
  /** An option or config value is invalid (unknown key, out of range, wrong type). */
  | 'ERR_HVAE_OPTION'
  /** A file or directory could not be read or written. */
  | 'ERR_HVAE_IO'
  /** A dataset could not be found or verified. */
  | 'ERR_HVAE_DATA'
  /** Training produced a non-finite loss. */
  | 'ERR_HVAE_NONFINITE_LOSS'
  /**
   * The operation was aborted by its AbortSignal: thrown by `batches()` and `fetchDataset`. (`fit` does not throw
   * it: an abort or SIGINT ends training with a checkpoint and resolves with `aborted: true`.)
   */
  | 'ERR_HVAE_ABORTED'
  /** LibTorch raised an error that none of the codes above describes. */
  | 'ERR_HVAE_TORCH'
  /** The model was used after `dispose()`. */
  | 'ERR_HVAE_DISPOSED';

/** The one error class of hvae-native. `cause` carries the underlying error (e.g. LibTorch's message). */
export class HVAEError extends Error {
  /** Stable machine-readable code. */
  readonly code: HVAEErrorCode;

  constructor(code: HVAEErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HVAEError';
    this.code = code;
  }
}

/** Throws an `ERR_HVAE_OPTION` error. */
export function optionError(message: string): never {
  throw new HVAEError('ERR_HVAE_OPTION', message);
}

/** `value` (`fallback` when undefined) must be one of `allowed`, else `ERR_HVAE_OPTION` naming them all. */
export function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string, fallback?: T): T {
  const v = value === undefined ? fallback : value;
  if (!allowed.includes(v as T)) {
    const list = allowed.map((a) => `'${a}'`);
    optionError(`${name} must be ${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}, got ${JSON.stringify(value)}`);
  }
  return v as T;
}

/**
 * Converts an error thrown by the native addon into an HVAEError. The addon throws JS errors whose message starts
 * with `[ERR_HVAE_…] `; anything else is `ERR_HVAE_TORCH` with the original error as `cause`.
 */
export function fromNative(err: unknown): HVAEError {
  if (err instanceof HVAEError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const m = /^\[(ERR_HVAE_[A-Z_]+)\]\s*([\s\S]*)$/.exec(msg);
  if (m) {
    const nativeCause = (err as { torchMessage?: string }).torchMessage;
    return new HVAEError(m[1] as HVAEErrorCode, m[2], { cause: nativeCause ?? err });
  }
  return new HVAEError('ERR_HVAE_TORCH', `LibTorch error: ${msg}`, { cause: err });
}
