/**
 * A dependency-free progress bar for the CLI: redraws one line on a TTY, prints a line every 10% otherwise.
 */

/** Options of {@link ProgressBar}. */
export interface ProgressBarOptions {
  /** Stream to draw on. Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Bar width in characters. Default 28. */
  width?: number;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** A labelled progress bar with rate and ETA. */
export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly width: number;
  private start = Date.now();
  private lastUpdate = this.start;
  private lastDecile = -1;
  private lastDraw = 0;
  private drawn = false;

  constructor(private label: string, private total: number, options: ProgressBarOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.width = options.width ?? 28;
  }

  /**
   * Updates the bar to `done` of `total`, with an optional suffix (e.g. the current loss). A new `label` starts a new
   * phase (say the next dataset): its rate and ETA count from the end of the previous phase, and on a terminal the
   * previous phase keeps its own line.
   */
  update(done: number, suffix = '', total = this.total, label = this.label): void {
    const now = Date.now();
    if (label !== this.label) {
      if (this.stream.isTTY && this.drawn) this.stream.write('\n');
      this.start = this.lastUpdate;
      this.lastDecile = -1;
      this.lastDraw = 0;
      this.drawn = false;
    }
    this.lastUpdate = now;
    this.total = total;
    this.label = label;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const elapsed = (now - this.start) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const eta = rate > 0 ? (total - done) / rate : Number.NaN;
    const text = `${label} ${Math.round(frac * 100).toString().padStart(3)}% ${done}/${total} ${rate.toFixed(1)}/s eta ${fmtTime(eta)}${suffix ? ` ${suffix}` : ''}`;
    if (this.stream.isTTY) {
      if (now - this.lastDraw < 100 && done < total) return;
      this.lastDraw = now;
      this.drawn = true;
      const filled = Math.round(frac * this.width);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}]`;
      const line = `${bar} ${text}`;
      const cols = this.stream.columns || 120;
      this.stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== this.lastDecile) {
        this.lastDecile = decile;
        this.stream.write(`${text}\n`);
      }
    }
  }

  /** Ends the bar's line. */
  done(message?: string): void {
    if (this.stream.isTTY) this.stream.write('\n');
    if (message) this.stream.write(`${message}\n`);
  }
}
