/**
 * A small seeded PRNG for shuffling and splitting: xoshiro128** (Blackman & Vigna) seeded through splitmix32, and
 * an unbiased Fisher–Yates shuffle. Deterministic across platforms and Node versions (32-bit integer arithmetic
 * only). Not cryptographic; not the RNG of the model's binarization (that runs in C++).
 */
import { HVAEError } from '../errors.js';

/** A seeded 32-bit generator. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param seed Any integer (or a string, hashed); the same seed gives the same stream on every platform.
   */
  constructor(seed: number | string = 0) {
    let x = typeof seed === 'string' ? hashString(seed) : normalizeSeed(seed);
    const next = (): number => {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next(); this.s1 = next(); this.s2 = next(); this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Unbiased uniform integer in [0, n), n ≤ 2^32 (rejection sampling). */
  nextInt(n: number): number {
    if (!(n > 0) || n > 4294967296 || !Number.isInteger(n)) {
      throw new HVAEError('ERR_HVAE_OPTION', `Rng.nextInt bound must be an integer in [1, 2^32], got ${n}`);
    }
    if (n === 1) return 0;
    const limit = 4294967296 - (4294967296 % n);
    let r: number;
    do r = this.nextU32(); while (r >= limit);
    return r % n;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function normalizeSeed(seed: number): number {
  if (!Number.isFinite(seed) || !Number.isInteger(seed)) {
    throw new HVAEError('ERR_HVAE_OPTION', `seed must be an integer, got ${seed}`);
  }
  // Fold the high bits of seeds beyond 32 bits in, so 1 and 2^32+1 differ.
  const hi = Math.floor(seed / 4294967296);
  return (seed ^ Math.imul(hi | 0, 0x27d4eb2d)) | 0;
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** Shuffles `arr` in place with Fisher–Yates and returns it. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(arr: T, rng: Rng): T {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = arr[i];
    arr[i] = arr[j];
    arr[j] = t;
  }
  return arr;
}

/** A seeded random permutation of 0..n-1 as an Int32Array. */
export function permutation(n: number, seed: number | string = 0): Int32Array {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) {
    throw new HVAEError('ERR_HVAE_OPTION', `permutation size must be an integer in [0, 2^31), got ${n}`);
  }
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, new Rng(seed));
}
