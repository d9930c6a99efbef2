/**
 * The training schedules of ALGORITHM.md §3.2, updated once per epoch at its start (epochs are 1-based).
 */

/**
 * KL warm-up: beta_e = min(1, e / warmupEpochs), accumulated as the reference does (repeated additions of
 * 1/warmupEpochs, so beta_199 = 0.995000...0008 for 200 epochs), capped at 1. At epoch `warmupEpochs` the sum is 1
 * up to its rounding (exactly 1 for 200 epochs, 0.9999999999999999 for 10), and exactly 1 from the epoch after on.
 * `warmupEpochs = 0` disables warm-up (beta = 1).
 */
export function klWarmup(epoch: number, warmupEpochs = 200): number {
  if (warmupEpochs <= 0) return 1;
  const inc = 1 / warmupEpochs;
  let t = 0;
  for (let i = 0; i < epoch; i++) t = Math.min(t + inc, 1);
  return t;
}

/**
 * Free nats: lambda_e = start for e <= constantEpochs, then numpy.linspace(start, 0, cooldownEpochs) over the
 * next `cooldownEpochs` epochs (so the first cooldown epoch still has `start` and the last exactly 0), then 0.
 * Defaults: start 2, 200 constant, 200 cooldown (lambda_201 = 2, lambda_400 = 0).
 */
export function freeNatsSchedule(epoch: number, start = 2, constantEpochs = 200, cooldownEpochs = 200): number {
  if (epoch <= constantEpochs) return start;
  const i = epoch - constantEpochs - 1;
  if (i >= cooldownEpochs) return 0;
  if (cooldownEpochs === 1) return start;
  if (i === cooldownEpochs - 1) return 0;
  const step = (0 - start) / (cooldownEpochs - 1);
  return i * step + start;
}
