/**
 * Publication-quality figures as self-contained SVG 1.1 strings (and PNG through sharp), with no plotting
 * dependency: ROC curves with their AUROC in the legend (the paper's Figure 6), overlaid score densities for
 * in-distribution vs OOD sets (Figure 5), and a grid of panels.
 *
 * Every figure is a plain string: `xmlns`, `version="1.1"`, `width`, `height` and `viewBox` are set, all text is
 * XML-escaped, fonts are the generic `sans-serif` family, there are no external references, scripts, CSS or
 * `id`s, and the output is deterministic (the same input gives the same bytes). The SVGs render identically in
 * librsvg (sharp) and browsers because they use only basic shapes, paths, `stroke-dasharray` and text with
 * `text-anchor` (no `dominant-baseline`, no `em` units).
 *
 * Conventions (as in ./metrics.ts): for ROC curves the OOD set is the positive class and a higher score means more
 * OOD. See docs/figures.md for how to read each figure.
 */
import * as fs from 'node:fs';
import { mkdirp } from './safetensors.js';
import * as path from 'node:path';
import { HVAEError, optionError } from './errors.js';
import { rocCurve, ScoreArray } from './metrics.js';

// ---------------------------------------------------------------------------------------------------------------
// Styles

/**
 * The Okabe–Ito colour-blind-safe palette in the order the figures use it (yellow `#F0E442` is left out: it is
 * unreadable as a thin line on white). Series `i` gets colour `i % 7`.
 */
export const PALETTE: readonly string[] = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];

/**
 * Dash patterns (`stroke-dasharray`; `''` = solid) in the order the figures use them. Series `i` gets pattern
 * `i % 5`; since 5 and 7 are coprime, the first 35 series all differ in the (colour, dash) pair, and neighbouring
 * series differ in both, so the curves stay distinguishable in grey-scale print.
 */
export const DASHES: readonly string[] = ['', '7 3', '2 2.5', '9 3 2 3', '4 2'];

/** The colour and dash pattern of the `i`-th series of a figure (see {@link PALETTE} and {@link DASHES}). */
export function seriesStyle(i: number): { color: string; dash: string } {
  return { color: PALETTE[i % PALETTE.length], dash: DASHES[i % DASHES.length] };
}

const FONT = 'sans-serif';
const TICK_FS = 11;
const LABEL_FS = 13;
const TITLE_FS = 15;
const LEGEND_FS = 11.5;
const NOTE_FS = 10;
const AXIS_COLOR = '#333333';
const GRID_COLOR = '#e3e3e3';
const LINE_WIDTH = 1.8;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/**
 * Escapes text for use in SVG/XML content or attribute values: `&`, `<`, `>`, `"` and `'` become entities; control
 * characters that XML 1.0 forbids and unpaired surrogates are removed; newlines and tabs become spaces.
 */
export function escapeXml(text: string): string {
  return String(text)
    .replace(/[\t\n\r]/g, ' ')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * "Nice" axis ticks: the multiples of a step of 1, 2, 2.5 or 5 × 10^k that lie in `[min, max]`, with the step chosen
 * so that there are about `count` intervals (R's `pretty`, without widening the range). `min > max` is swapped;
 * `min === max` gives `[min]`. Values are rounded to 12 significant digits so that `0.1 * 3` prints as `0.3`.
 *
 * @example niceTicks(0, 1, 5) // [0, 0.2, 0.4, 0.6, 0.8, 1]
 * @throws HVAEError `ERR_HVAE_OPTION` if `min` or `max` is not finite.
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) optionError(`niceTicks needs finite bounds, got [${min}, ${max}]`);
  if (min > max) [min, max] = [max, min];
  if (min === max) return [min];
  const n = Math.max(1, Math.round(Number.isFinite(count) ? count : 5));
  const raw = (max - min) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 2.25 ? 2 : norm < 3.5 ? 2.5 : norm < 7.5 ? 5 : 10) * mag;
  const first = Math.ceil(min / step - 1e-9);
  const last = Math.floor(max / step + 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) {
    const v = Number((k * step).toPrecision(12));
    ticks.push(v === 0 ? 0 : v);
  }
  return ticks;
}

/**
 * Formats tick values with the fewest decimals that show every tick exactly (all ticks get the same number), in
 * exponent notation (`1.5e6`) for very large or very small magnitudes, with a typographic minus sign.
 */
export function formatTicks(ticks: readonly number[]): string[] {
  if (ticks.length === 0) return [];
  const maxAbs = Math.max(...ticks.map(Math.abs));
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0]) || 1;
  const tol = step * 1e-6;
  const exp = maxAbs >= 1e6 || (maxAbs > 0 && maxAbs < 1e-3);
  let out: string[] = [];
  for (let d = 0; d <= 12; d++) {
    out = ticks.map((t) => (exp ? t.toExponential(d) : t.toFixed(d)));
    if (out.every((s, i) => Math.abs(Number(s) - ticks[i]) <= tol)) break;
  }
  return out.map((s) => {
    if (exp) s = s.replace(/e\+?/, 'e');
    if (/^-0(\.0*)?$/.test(s)) s = s.slice(1);
    return s.replace(/^-/, '\u2212').replace(/e-/, 'e\u2212');
  });
}

/** A number for SVG output: at most `digits` decimals, no trailing zeros, no `-0`. */
function num(v: number, digits = 2): string {
  const s = v.toFixed(digits);
  const t = s.indexOf('.') >= 0 ? s.replace(/\.?0+$/, '') : s;
  return t === '-0' ? '0' : t;
}

/**
 * An SVG path `d` string through the points `(x[i], y[i])` (absolute `M`/`L` commands, coordinates rounded to
 * `digits` decimals, consecutive duplicate points after rounding skipped). A non-finite coordinate breaks the line:
 * the next finite point starts a new sub-path. Returns `''` when there is no finite point.
 */
export function linePath(x: ArrayLike<number>, y: ArrayLike<number>, digits = 2): string {
  if (x.length !== y.length) optionError(`linePath: x and y differ in length (${x.length} vs ${y.length})`);
  const parts: string[] = [];
  let pen = false;
  let last = '';
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    const yi = y[i];
    if (!Number.isFinite(xi) || !Number.isFinite(yi)) {
      pen = false;
      continue;
    }
    const p = `${num(xi, digits)},${num(yi, digits)}`;
    if (pen && p === last) continue;
    parts.push((pen ? 'L' : 'M') + p);
    pen = true;
    last = p;
  }
  return parts.join('');
}

/** Approximate advance widths (in em) of a sans-serif font (DejaVu Sans / Helvetica-like), for layout only. */
function charWidth(ch: string): number {
  if (/[0-9]/.test(ch)) return 0.64;
  if (ch === ' ') return 0.32;
  if (/[iljI.,:;'|!()[\]{}/\\`]/.test(ch)) return 0.34;
  if (/[ftr]/.test(ch)) return 0.42;
  if (/[mwMW@%]/.test(ch)) return 0.92;
  if (/[A-Z&]/.test(ch)) return 0.72;
  if (/[a-z]/.test(ch)) return 0.6;
  const c = ch.codePointAt(0) ?? 0;
  if (c >= 0x2e80) return 1.0; // CJK and other wide scripts
  return 0.66;
}

/** Estimated rendered width of `text` at `size` px (a slight over-estimate, so boxes do not clip the text). */
function textWidth(text: string, size: number): number {
  let w = 0;
  for (const ch of text) w += charWidth(ch);
  return w * size;
}

/** `text` shortened with an ellipsis so that its estimated width is at most `maxW`. */
function truncate(text: string, maxW: number, size: number): string {
  if (textWidth(text, size) <= maxW) return text;
  const chars = Array.from(text);
  while (chars.length > 1 && textWidth(chars.join('') + '\u2026', size) > maxW) chars.pop();
  return chars.join('') + '\u2026';
}

function textEl(x: number, y: number, text: string, attrs: Record<string, string | number> = {}): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${typeof v === 'number' ? num(v) : escapeXml(v)}"`)
    .join('');
  return `<text x="${num(x)}" y="${num(y)}"${a}>${escapeXml(text)}</text>`;
}

function svgOpen(width: number, height: number, title: string | undefined): string {
  const w = num(width, 0);
  const h = num(height, 0);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ` +
    `font-family="${FONT}">\n` +
    (title ? `<title>${escapeXml(title)}</title>\n` : '') +
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>\n`
  );
}

function checkDim(v: unknown, what: string, def: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 120 || v > 20000) {
    optionError(`${what} must be a number of pixels in [120, 20000], got ${String(v)}`);
  }
  return Math.round(v);
}

function checkKeys(options: object, known: readonly string[], fn: string): void {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) optionError(`${fn}: unknown option '${k}' (known: ${known.join(', ')})`);
  }
}

function checkLabel(v: unknown, what: string): string {
  if (typeof v !== 'string') optionError(`${what} must be a string, got ${typeof v}`);
  return v;
}

function checkOptionalText(v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined;
  return checkLabel(v, what);
}

/** Where the legend goes: `'auto'` = inside the plot where it covers no curve, otherwise to the right of it. */
export type LegendPlacement = 'auto' | 'inside' | 'right' | 'none';

function checkLegend(v: unknown): LegendPlacement {
  if (v === undefined) return 'auto';
  if (v !== 'auto' && v !== 'inside' && v !== 'right' && v !== 'none') {
    optionError(`legend must be 'auto', 'inside', 'right' or 'none', got ${String(v)}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Legend and axes

interface LegendRow {
  color: string;
  dash: string;
  label: string;
  /** Right-aligned value column (e.g. the AUROC). */
  value?: string;
  fill?: boolean;
}

interface Legend {
  w: number;
  h: number;
  render(x: number, y: number, opaque: boolean): string;
}

const SWATCH = 30;

function makeLegend(rows: LegendRow[], header: string | undefined, maxW: number): Legend {
  const pad = 8;
  const rowH = LEGEND_FS + 7;
  const valueW = Math.max(
    header ? textWidth(header, LEGEND_FS - 1) : 0,
    ...rows.map((r) => (r.value ? textWidth(r.value, LEGEND_FS) : 0)),
  );
  const gap = valueW > 0 ? 14 : 0;
  const labelMax = Math.max(40, maxW - 2 * pad - SWATCH - 8 - gap - valueW);
  const labels = rows.map((r) => truncate(r.label, labelMax, LEGEND_FS));
  const labelW = Math.max(...labels.map((l) => textWidth(l, LEGEND_FS)));
  const w = Math.ceil(2 * pad + SWATCH + 8 + labelW + gap + valueW);
  const headerH = header ? rowH - 2 : 0;
  const h = Math.ceil(2 * pad + headerH + rows.length * rowH - 4);
  return {
    w,
    h,
    render(x0: number, y0: number, opaque: boolean): string {
      const out: string[] = ['<g>'];
      out.push(
        `<rect x="${num(x0)}" y="${num(y0)}" width="${w}" height="${h}" rx="3" fill="#ffffff" ` +
          `fill-opacity="${opaque ? 0.9 : 1}" stroke="#c8c8c8" stroke-width="0.8"/>`,
      );
      let y = y0 + pad;
      if (header) {
        out.push(textEl(x0 + w - pad, y + LEGEND_FS - 2, header, { 'font-size': LEGEND_FS - 1, 'text-anchor': 'end', fill: '#555555' }));
        y += headerH;
      }
      rows.forEach((r, i) => {
        const cy = y + rowH / 2 - 2;
        const sx = x0 + pad;
        if (r.fill) {
          out.push(`<rect x="${num(sx)}" y="${num(cy - 5)}" width="${SWATCH}" height="10" fill="${r.color}" fill-opacity="0.18"/>`);
        }
        out.push(
          `<line x1="${num(sx)}" y1="${num(cy)}" x2="${num(sx + SWATCH)}" y2="${num(cy)}" stroke="${r.color}" ` +
            `stroke-width="${LINE_WIDTH + 0.4}"${r.dash ? ` stroke-dasharray="${r.dash}"` : ''}/>`,
        );
        const ty = cy + LEGEND_FS * 0.36;
        out.push(textEl(sx + SWATCH + 8, ty, labels[i], { 'font-size': LEGEND_FS, fill: '#111111' }));
        if (r.value) out.push(textEl(x0 + w - pad, ty, r.value, { 'font-size': LEGEND_FS, 'text-anchor': 'end', fill: '#111111' }));
        y += rowH;
      });
      out.push('</g>');
      return out.join('\n');
    },
  };
}

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Axis {
  min: number;
  max: number;
  ticks: number[];
  labels: string[];
}

function axis(min: number, max: number, count: number): Axis {
  const ticks = niceTicks(min, max, count);
  return { min, max, ticks, labels: formatTicks(ticks) };
}

/** Grid, frame, ticks, tick labels and axis labels around the plot rectangle `r`. */
function renderAxes(r: Rect, xa: Axis, ya: Axis, xLabel: string, yLabel: string, yLabelX: number): string {
  const sx = (v: number): number => r.x + ((v - xa.min) / (xa.max - xa.min)) * r.w;
  const sy = (v: number): number => r.y + r.h - ((v - ya.min) / (ya.max - ya.min)) * r.h;
  const out: string[] = [];
  const grid: string[] = [];
  for (const t of xa.ticks) grid.push(`M${num(sx(t))},${num(r.y)}V${num(r.y + r.h)}`);
  for (const t of ya.ticks) grid.push(`M${num(r.x)},${num(sy(t))}H${num(r.x + r.w)}`);
  out.push(`<path d="${grid.join('')}" fill="none" stroke="${GRID_COLOR}" stroke-width="0.8"/>`);
  const tk: string[] = [];
  for (const t of xa.ticks) tk.push(`M${num(sx(t))},${num(r.y + r.h)}v5`);
  for (const t of ya.ticks) tk.push(`M${num(r.x)},${num(sy(t))}h-5`);
  out.push(`<path d="${tk.join('')}" fill="none" stroke="${AXIS_COLOR}" stroke-width="1"/>`);
  const labels: string[] = ['<g font-size="' + TICK_FS + '" fill="' + AXIS_COLOR + '">'];
  xa.ticks.forEach((t, i) => labels.push(textEl(sx(t), r.y + r.h + 8 + TICK_FS * 0.8, xa.labels[i], { 'text-anchor': 'middle' })));
  ya.ticks.forEach((t, i) => labels.push(textEl(r.x - 8, sy(t) + TICK_FS * 0.36, ya.labels[i], { 'text-anchor': 'end' })));
  labels.push('</g>');
  out.push(labels.join('\n'));
  const xly = r.y + r.h + 8 + TICK_FS + 8 + LABEL_FS * 0.8;
  out.push(textEl(r.x + r.w / 2, xly, xLabel, { 'font-size': LABEL_FS, 'text-anchor': 'middle', fill: '#111111' }));
  const cy = r.y + r.h / 2;
  out.push(
    textEl(yLabelX, cy, yLabel, {
      'font-size': LABEL_FS,
      'text-anchor': 'middle',
      fill: '#111111',
      transform: `rotate(-90 ${num(yLabelX)} ${num(cy)})`,
    }),
  );
  return out.join('\n');
}

function renderFrame(r: Rect): string {
  return `<rect x="${num(r.x)}" y="${num(r.y)}" width="${num(r.w)}" height="${num(r.h)}" fill="none" stroke="${AXIS_COLOR}" stroke-width="1"/>`;
}

/** Space from the figure's left edge to the plot: margin, rotated y label, tick labels, tick marks. */
function leftMargin(yLabels: string[]): { left: number; yLabelX: number } {
  const tickW = Math.max(0, ...yLabels.map((l) => textWidth(l, TICK_FS)));
  const yLabelX = 10 + LABEL_FS * 0.8;
  return { left: Math.ceil(yLabelX + 10 + tickW + 8), yLabelX };
}

/** Height below the plot: tick marks, tick labels, x label, optional note. */
function bottomMargin(note: boolean): number {
  return Math.ceil(8 + TICK_FS + 8 + LABEL_FS + 10 + (note ? NOTE_FS + 6 : 0));
}

/**
 * True when some polyline (pixel coordinates) passes through the box `b` (grown by `slack`), or, with `fillBelow`,
 * when its filled area below reaches into the box.
 */
function hitsBox(lines: { x: ArrayLike<number>; y: ArrayLike<number> }[], b: Rect, slack: number, fillBelow: boolean): boolean {
  const x0 = b.x - slack;
  const x1 = b.x + b.w + slack;
  const y0 = b.y - slack;
  const y1 = b.y + b.h + slack;
  for (const { x, y } of lines) {
    for (let i = 0; i < x.length; i++) {
      const ax = x[i];
      const ay = y[i];
      const bx = i + 1 < x.length ? x[i + 1] : ax;
      const by = i + 1 < x.length ? y[i + 1] : ay;
      const lo = Math.min(ax, bx);
      const hi = Math.max(ax, bx);
      if (hi < x0 || lo > x1) continue;
      // the part of the segment over [x0, x1]
      let ya = ay;
      let yb = by;
      if (bx !== ax) {
        const at = (xx: number): number => ay + ((xx - ax) / (bx - ax)) * (by - ay);
        ya = at(Math.max(lo, x0));
        yb = at(Math.min(hi, x1));
      }
      const top = Math.min(ya, yb);
      const bot = Math.max(ya, yb);
      if (fillBelow ? top <= y1 : top <= y1 && bot >= y0) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// ROC figure

/** One curve of {@link rocFigure}: a label and the two score sets (OOD = positive, higher score = more OOD). */
export interface RocFigureCurve {
  /** Legend text (any characters; escaped). */
  label: string;
  /** In-distribution scores (negatives). At least one, all finite. */
  scoresIn: ArrayLike<number>;
  /** OOD scores (positives). At least one, all finite. */
  scoresOut: ArrayLike<number>;
}

/** Options of {@link rocFigure}. */
export interface RocFigureOptions {
  /** Title above the plot. Default: none. */
  title?: string;
  /**
   * Figure width in px. Default: just wide enough for the square plot plus an outside legend, if any.
   * When given, the plot shrinks to leave room for the legend.
   */
  width?: number;
  /** Figure height in px. Default 500. The plot area is square. */
  height?: number;
  /** Legend placement. Default `'auto'`: in the lower-right corner when it covers no curve, else to the right. */
  legend?: LegendPlacement;
  /** Most points drawn per curve (the curve is thinned so that it moves by ≤ 2/maxPoints between points). Default 2000. */
  maxPoints?: number;
  /** Axis labels. Defaults: 'False positive rate', 'True positive rate'. */
  xLabel?: string;
  yLabel?: string;
}

function toScoreArray(x: unknown, what: string): ScoreArray {
  if (Array.isArray(x) || x instanceof Float64Array || x instanceof Float32Array) return x as ScoreArray;
  if (x === null || typeof x !== 'object' || typeof (x as ArrayLike<number>).length !== 'number') {
    optionError(`${what} must be an array of numbers`);
  }
  return Float64Array.from(x as ArrayLike<number>);
}

/**
 * Thins a monotone ROC polyline (`fpr`, `tpr` both non-decreasing) for drawing: a point is kept when the L1
 * distance travelled since the last kept point reaches `2 / maxPoints` (the first and last points are always kept),
 * so at most about `maxPoints + 1` points remain and the drawn curve is within `2 / maxPoints` of the exact one
 * (0.4 px on a 400 px plot with the default 2000). Returns the arrays unchanged when they are short enough.
 */
export function thinRoc(fpr: ArrayLike<number>, tpr: ArrayLike<number>, maxPoints = 2000): { fpr: number[]; tpr: number[] } {
  const n = fpr.length;
  const x: number[] = [];
  const y: number[] = [];
  if (n <= maxPoints) {
    for (let i = 0; i < n; i++) {
      x.push(fpr[i]);
      y.push(tpr[i]);
    }
    return { fpr: x, tpr: y };
  }
  const step = 2 / maxPoints;
  let lx = fpr[0];
  let ly = tpr[0];
  x.push(lx);
  y.push(ly);
  for (let i = 1; i < n - 1; i++) {
    if (Math.abs(fpr[i] - lx) + Math.abs(tpr[i] - ly) >= step) {
      lx = fpr[i];
      ly = tpr[i];
      x.push(lx);
      y.push(ly);
    }
  }
  x.push(fpr[n - 1]);
  y.push(tpr[n - 1]);
  return { fpr: x, tpr: y };
}

/**
 * ROC curves of OOD detection in one figure (the paper's Figure 6 style): false-positive rate on x, true-positive
 * rate on y (both 0–1, equal scale), a dashed grey chance diagonal, a light grid, and a legend with each curve's
 * AUROC to three decimals (the same number as `oodMetrics(scoresIn, scoresOut).auroc`). Curves get distinct
 * colour-blind-safe colours and dash patterns ({@link seriesStyle}), so ten or more stay distinguishable.
 *
 * Each curve is the exact sklearn ROC ({@link rocCurve}), thinned for drawing to at most `maxPoints` points
 * ({@link thinRoc}); 10^6 scores per set take well under a second.
 *
 * @returns a standalone SVG 1.1 document as a string.
 * @throws HVAEError `ERR_HVAE_OPTION` for no curves, a non-string label, an empty score set or a bad option;
 *   `ERR_HVAE_NONFINITE` for a NaN or infinite score.
 */
export function rocFigure(curves: readonly RocFigureCurve[], options: RocFigureOptions = {}): string {
  if (!Array.isArray(curves) || curves.length === 0) optionError('rocFigure needs a non-empty array of curves');
  if (options === null || typeof options !== 'object') optionError('rocFigure: options must be an object');
  checkKeys(options, ['title', 'width', 'height', 'legend', 'maxPoints', 'xLabel', 'yLabel'], 'rocFigure');
  const title = checkOptionalText(options.title, 'title');
  const xLabel = checkOptionalText(options.xLabel, 'xLabel') ?? 'False positive rate';
  const yLabel = checkOptionalText(options.yLabel, 'yLabel') ?? 'True positive rate';
  const height = checkDim(options.height, 'height', 500);
  const legendMode = checkLegend(options.legend);
  const maxPoints = options.maxPoints ?? 2000;
  if (typeof maxPoints !== 'number' || !Number.isInteger(maxPoints) || maxPoints < 10) {
    optionError(`maxPoints must be an integer >= 10, got ${String(maxPoints)}`);
  }

  const data = curves.map((c, i) => {
    if (c === null || typeof c !== 'object') optionError(`curves[${i}] must be an object`);
    const label = checkLabel(c.label, `curves[${i}].label`);
    const sIn = toScoreArray(c.scoresIn, `curves[${i}].scoresIn`);
    const sOut = toScoreArray(c.scoresOut, `curves[${i}].scoresOut`);
    const roc = rocCurve(sIn, sOut, { dropIntermediate: true });
    // AUROC exactly as metrics.auroc: the thinned points are collinear, so the integer trapezoid sum over the kept
    // points equals the one over all distinct thresholds; the counts are recovered exactly from the rates.
    const nIn = sIn.length;
    const nOut = sOut.length;
    let area2 = 0;
    for (let k = 1; k < roc.fpr.length; k++) {
      const fp0 = Math.round(roc.fpr[k - 1] * nIn);
      const fp1 = Math.round(roc.fpr[k] * nIn);
      const tp0 = Math.round(roc.tpr[k - 1] * nOut);
      const tp1 = Math.round(roc.tpr[k] * nOut);
      area2 += (fp1 - fp0) * (tp0 + tp1);
    }
    const auc = area2 / (2 * nIn * nOut);
    const thin = thinRoc(roc.fpr, roc.tpr, maxPoints);
    return { label, auc, ...thin, style: seriesStyle(i) };
  });

  const rows: LegendRow[] = data.map((d) => ({ color: d.style.color, dash: d.style.dash, label: d.label, value: d.auc.toFixed(3) }));
  const xa = axis(0, 1, 5);
  const ya = axis(0, 1, 5);
  const { left, yLabelX } = leftMargin(ya.labels);
  const top = title ? 16 + TITLE_FS + 10 : 14;
  const bottom = bottomMargin(false);
  const right = 18;
  const side0 = height - top - bottom;
  if (side0 < 60) optionError(`height ${height} leaves no room for the plot`);

  const place = (side: number, px: number): { r: Rect; legend: Legend; inside: boolean } | undefined => {
    const r = { x: px, y: top, w: side, h: side };
    const legend = makeLegend(rows, 'AUROC', side * 0.72);
    const box = { x: r.x + r.w - legend.w - 10, y: r.y + r.h - legend.h - 10, w: legend.w, h: legend.h };
    if (box.x < r.x + 4 || box.y < r.y + 4) return undefined;
    if (legendMode === 'inside') return { r, legend, inside: true };
    const lines = data.map((d) => ({ x: d.fpr.map((v) => r.x + v * r.w), y: d.tpr.map((v) => r.y + r.h - v * r.h) }));
    lines.push({ x: [r.x, r.x + r.w], y: [r.y + r.h, r.y] }); // the chance diagonal
    if (hitsBox(lines, box, 3, false)) return undefined;
    return { r, legend, inside: true };
  };

  let width: number;
  let plot: Rect;
  let legendSvg = '';
  if (legendMode === 'none') {
    const side = options.width === undefined ? side0 : Math.min(side0, checkDim(options.width, 'width', 0) - left - right);
    width = options.width === undefined ? left + side + right : checkDim(options.width, 'width', 0);
    plot = { x: left + Math.max(0, (width - left - right - side) / 2), y: top, w: side, h: side };
  } else {
    const widthOpt = options.width === undefined ? undefined : checkDim(options.width, 'width', 0);
    let side = widthOpt === undefined ? side0 : Math.min(side0, widthOpt - left - right);
    if (side < 60) optionError(`width ${widthOpt} leaves no room for the plot`);
    const inside = legendMode === 'right' ? undefined : place(side, left);
    if (inside) {
      width = widthOpt ?? left + side + right;
      const px = left + Math.max(0, (width - left - right - side) / 2);
      plot = { x: px, y: top, w: side, h: side };
      legendSvg = inside.legend.render(plot.x + plot.w - inside.legend.w - 10, plot.y + plot.h - inside.legend.h - 10, true);
    } else {
      // legend to the right of the plot
      const legMax = widthOpt === undefined ? 360 : Math.max(120, widthOpt - left - right - 16 - Math.max(160, (widthOpt - left) * 0.45));
      const legend = makeLegend(rows, 'AUROC', legMax);
      if (widthOpt !== undefined) side = Math.min(side, widthOpt - left - 16 - legend.w - right);
      if (side < 60) optionError(`width ${widthOpt} leaves no room for the plot and its legend`);
      width = widthOpt ?? left + side + 16 + legend.w + right;
      const spare = Math.max(0, width - (left + side + 16 + legend.w + right));
      plot = { x: left + spare / 2, y: top, w: side, h: side };
      legendSvg = legend.render(plot.x + plot.w + 16, plot.y, false);
    }
  }

  const out: string[] = [svgOpen(width, height, title ?? 'ROC curves')];
  // the y label moves with the plot when a given width is wider than needed and the plot is centred
  out.push(renderAxes(plot, xa, ya, xLabel, yLabel, yLabelX + (plot.x - left)));
  out.push(renderFrame(plot)); // under the curves, so that a curve along an edge (e.g. a perfect detector) shows
  out.push(
    `<path d="M${num(plot.x)},${num(plot.y + plot.h)}L${num(plot.x + plot.w)},${num(plot.y)}" fill="none" ` +
      `stroke="#9a9a9a" stroke-width="1" stroke-dasharray="4 4"/>`,
  );
  const curvesSvg: string[] = ['<g fill="none" stroke-width="' + LINE_WIDTH + '" stroke-linejoin="round">'];
  // draw in reverse so that the first curve (first in the legend) ends up on top
  for (let i = data.length - 1; i >= 0; i--) {
    const d = data[i];
    const px = d.fpr.map((v) => plot.x + v * plot.w);
    const py = d.tpr.map((v) => plot.y + plot.h - v * plot.h);
    curvesSvg.push(`<path d="${linePath(px, py)}" stroke="${d.style.color}"${d.style.dash ? ` stroke-dasharray="${d.style.dash}"` : ''}/>`);
  }
  curvesSvg.push('</g>');
  out.push(curvesSvg.join('\n'));
  if (title) out.push(textEl(plot.x + plot.w / 2, 16 + TITLE_FS * 0.8, title, { 'font-size': TITLE_FS, 'font-weight': 'bold', 'text-anchor': 'middle', fill: '#111111' }));
  if (legendSvg) out.push(legendSvg);
  out.push('</svg>\n');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Density figure

/** One series of {@link densityFigure}. */
export interface DensitySeries {
  /** Legend text (any characters; escaped). */
  label: string;
  /** The values (e.g. the scores of one data set). Non-finite values are left out and counted in the note. */
  values: ArrayLike<number>;
}

/** Options of {@link densityFigure}. */
export interface DensityFigureOptions {
  /** Title above the plot. Default: none. */
  title?: string;
  /** x-axis label. Default 'Score'. */
  xLabel?: string;
  /** y-axis label. Default 'Density'. */
  yLabel?: string;
  /** Figure width in px. Default 640. */
  width?: number;
  /** Figure height in px. Default 400. */
  height?: number;
  /**
   * `'kde'` (default): Gaussian kernel density estimate per series, drawn as a line with a light fill.
   * `'histogram'`: density-normalised step histogram per series on shared bins, with a light fill.
   */
  kind?: 'kde' | 'histogram';
  /**
   * For `'histogram'`: the number of bins over the shown x range. Default: Freedman–Diaconis for the largest
   * series, clamped to [5, 120]. For `'kde'`: the number of grid points the density is evaluated at (default 512).
   */
  bins?: number;
  /**
   * The x range shown is from the lowest `clipQuantiles[0]` quantile to the highest `clipQuantiles[1]` quantile
   * over the series (so a few outliers cannot squash the plot), padded a little. Default `[0.005, 0.995]`;
   * `[0, 1]` shows everything. When values fall outside, a note under the plot says how many.
   */
  clipQuantiles?: [number, number];
  /** KDE bandwidth multiplier applied to Silverman's rule (default 1). */
  bandwidthScale?: number;
  /** Legend placement. Default `'auto'`: top-right or top-left inside the plot where it covers no curve, else right. */
  legend?: LegendPlacement;
  /** Show each series' size in the legend (default true). */
  showCounts?: boolean;
}

/** Linear-interpolated quantile (numpy's default) of an ascending-sorted array. */
function quantileSorted(s: Float64Array, q: number): number {
  const n = s.length;
  if (n === 1) return s[0];
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

interface SeriesStats {
  label: string;
  sorted: Float64Array;
  nonFinite: number;
  sd: number;
  /** Silverman bandwidth (0 for a constant or single-value series). */
  h: number;
}

function seriesStats(s: DensitySeries, i: number): SeriesStats {
  if (s === null || typeof s !== 'object') optionError(`series[${i}] must be an object`);
  const label = checkLabel(s.label, `series[${i}].label`);
  const v = s.values as unknown;
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') {
    optionError(`series[${i}].values must be an array of numbers`);
  }
  const a = v as ArrayLike<number>;
  const buf = new Float64Array(a.length);
  let n = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k];
    if (typeof x !== 'number') optionError(`series[${i}].values[${k}] is not a number (${typeof x})`);
    if (Number.isFinite(x)) buf[n++] = x;
  }
  const sorted = buf.slice(0, n).sort();
  let sd = 0;
  let h = 0;
  if (n >= 2) {
    let mean = 0;
    for (let k = 0; k < n; k++) mean += sorted[k];
    mean /= n;
    let ss = 0;
    for (let k = 0; k < n; k++) ss += (sorted[k] - mean) ** 2;
    sd = Math.sqrt(ss / (n - 1));
    const iqr = quantileSorted(sorted, 0.75) - quantileSorted(sorted, 0.25);
    // Silverman's rule of thumb; the IQR term guards against heavy tails, σ alone is used when the IQR is 0
    const spread = iqr > 0 ? Math.min(sd, iqr / 1.34) : sd;
    h = 0.9 * spread * Math.pow(n, -0.2);
    if (!(sd > 1e-300) || sorted[n - 1] === sorted[0]) {
      sd = 0;
      h = 0;
    }
  }
  return { label, sorted, nonFinite: a.length - n, sd, h };
}

/**
 * Gaussian KDE of `sorted` on `grid` (evenly spaced) by linear binning onto the grid (extended by 4 bandwidths on
 * each side) and a discrete convolution with the kernel: O(n + G·K). Normalised by the full n, so values outside
 * the grid count in the total.
 */
function kdeOnGrid(sorted: Float64Array, h: number, g0: number, dx: number, G: number): Float64Array {
  const K = Math.min(200000, Math.ceil((4 * h) / dx));
  const M = G + 2 * K;
  const counts = new Float64Array(M);
  const base = g0 - K * dx;
  for (let k = 0; k < sorted.length; k++) {
    const t = (sorted[k] - base) / dx;
    if (t < 0 || t > M - 1) continue;
    const j = Math.floor(t);
    const f = t - j;
    counts[j] += 1 - f;
    if (j + 1 < M) counts[j + 1] += f;
  }
  const w = new Float64Array(2 * K + 1);
  for (let m = -K; m <= K; m++) w[m + K] = Math.exp(-0.5 * ((m * dx) / h) ** 2);
  const norm = 1 / (sorted.length * h * Math.sqrt(2 * Math.PI));
  const out = new Float64Array(G);
  for (let j = 0; j < G; j++) {
    let s = 0;
    const c = j + K;
    for (let m = -K; m <= K; m++) s += counts[c + m] * w[m + K];
    out[j] = s * norm;
  }
  return out;
}

function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

function fmtValue(v: number): string {
  const s = Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Number(v.toPrecision(5)));
  return s.replace(/^-/, '\u2212');
}

/** A fraction as a percentage with at most `digits` significant digits (0.005 → '0.5%', 0.000228 → '0.0229%'). */
function fmtPct(q: number, digits = 6): string {
  return `${Number((q * 100).toPrecision(digits))}%`;
}

/**
 * Overlaid distributions of several score sets (the paper's Figure 5 style: in-distribution vs OOD scores): a
 * Gaussian kernel density estimate per series with Silverman's bandwidth (0.9·min(σ, IQR/1.34)·n^−1/5), drawn as a
 * coloured line with a light fill, or (`kind: 'histogram'`) density-normalised step histograms on shared bins.
 *
 * Robustness: the x range is clipped to quantiles (`clipQuantiles`, default 0.5 %–99.5 %) and a small note under
 * the plot says how many values lie outside; non-finite values are left out (and counted in the note); a series
 * whose values are all equal (or that has one value) is drawn as a vertical line at that value and marked
 * "(all = v)" in the legend, since it has no density; an empty series is listed as "(no data)". The KDE is evaluated
 * by linear binning and convolution, so 10^6 values take a fraction of a second.
 *
 * @returns a standalone SVG 1.1 document as a string.
 * @throws HVAEError `ERR_HVAE_OPTION` for no series, a non-string label, a non-numeric value or a bad option.
 */
export function densityFigure(series: readonly DensitySeries[], options: DensityFigureOptions = {}): string {
  if (!Array.isArray(series) || series.length === 0) optionError('densityFigure needs a non-empty array of series');
  if (options === null || typeof options !== 'object') optionError('densityFigure: options must be an object');
  checkKeys(
    options,
    ['title', 'xLabel', 'yLabel', 'width', 'height', 'kind', 'bins', 'clipQuantiles', 'bandwidthScale', 'legend', 'showCounts'],
    'densityFigure',
  );
  const title = checkOptionalText(options.title, 'title');
  const xLabel = checkOptionalText(options.xLabel, 'xLabel') ?? 'Score';
  const yLabel = checkOptionalText(options.yLabel, 'yLabel') ?? 'Density';
  const width = checkDim(options.width, 'width', 640);
  const height = checkDim(options.height, 'height', 400);
  const kind = options.kind ?? 'kde';
  if (kind !== 'kde' && kind !== 'histogram') optionError(`kind must be 'kde' or 'histogram', got ${String(kind)}`);
  const legendMode = checkLegend(options.legend);
  const showCounts = options.showCounts ?? true;
  if (typeof showCounts !== 'boolean') optionError('showCounts must be a boolean');
  const [qLo, qHi] = options.clipQuantiles ?? [0.005, 0.995];
  if (
    !Array.isArray(options.clipQuantiles ?? []) ||
    typeof qLo !== 'number' || typeof qHi !== 'number' || !(qLo >= 0) || !(qHi <= 1) || !(qLo < qHi)
  ) {
    optionError(`clipQuantiles must be [lo, hi] with 0 <= lo < hi <= 1, got ${JSON.stringify(options.clipQuantiles)}`);
  }
  const bwScale = options.bandwidthScale ?? 1;
  if (typeof bwScale !== 'number' || !(bwScale > 0) || !Number.isFinite(bwScale)) optionError('bandwidthScale must be a positive number');
  if (options.bins !== undefined && (typeof options.bins !== 'number' || !Number.isInteger(options.bins) || options.bins < 2 || options.bins > 10000)) {
    optionError(`bins must be an integer in [2, 10000], got ${String(options.bins)}`);
  }

  const stats = series.map((s, i) => seriesStats(s, i));
  for (const s of stats) s.h *= bwScale;
  const withData = stats.filter((s) => s.sorted.length > 0);

  // --- x range: quantile-clipped, padded
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of withData) {
    lo = Math.min(lo, quantileSorted(s.sorted, qLo));
    hi = Math.max(hi, quantileSorted(s.sorted, qHi));
  }
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  if (hi - lo <= Math.abs(hi) * 1e-12) {
    const half = Math.abs(lo) * 0.1 || 1;
    lo -= half;
    hi += half;
  } else {
    const range = hi - lo;
    const hMax = Math.max(0, ...withData.map((s) => s.h));
    const pad = kind === 'kde' ? Math.max(0.04 * range, Math.min(3 * hMax, 0.5 * range)) : 0.02 * range;
    lo -= pad;
    hi += pad;
  }
  let outside = 0;
  let total = 0;
  let nonFinite = 0;
  for (const s of stats) {
    total += s.sorted.length + s.nonFinite;
    nonFinite += s.nonFinite;
    for (let k = 0; k < s.sorted.length && s.sorted[k] < lo; k++) outside++;
    for (let k = s.sorted.length - 1; k >= 0 && s.sorted[k] > hi; k--) outside++;
  }

  // --- curves in data coordinates
  interface Drawn {
    x: Float64Array;
    y: Float64Array;
  }
  const curves: (Drawn | undefined)[] = [];
  const constants: (number | undefined)[] = [];
  if (kind === 'kde') {
    const G = options.bins ?? 512;
    const dx = (hi - lo) / (G - 1);
    for (const s of stats) {
      if (s.sorted.length > 0 && s.h === 0) {
        constants.push(s.sorted[0]);
        curves.push(undefined);
        continue;
      }
      constants.push(undefined);
      if (s.sorted.length === 0) {
        curves.push(undefined);
        continue;
      }
      const h = Math.max(s.h, 1.5 * dx); // a bandwidth below the grid step would alias
      const y = kdeOnGrid(s.sorted, h, lo, dx, G);
      const x = new Float64Array(G);
      for (let j = 0; j < G; j++) x[j] = lo + j * dx;
      curves.push({ x, y });
    }
  } else {
    let bins = options.bins;
    if (bins === undefined) {
      const big = withData.reduce<SeriesStats | undefined>((a, s) => (!a || s.sorted.length > a.sorted.length ? s : a), undefined);
      bins = 30;
      if (big && big.sorted.length > 1) {
        const iqr = quantileSorted(big.sorted, 0.75) - quantileSorted(big.sorted, 0.25);
        if (iqr > 0) bins = Math.ceil((hi - lo) / (2 * iqr * Math.pow(big.sorted.length, -1 / 3)));
      }
      bins = Math.max(5, Math.min(120, bins));
    }
    const bw = (hi - lo) / bins;
    for (const s of stats) {
      const n = s.sorted.length;
      if (n > 0 && s.sorted[0] === s.sorted[n - 1]) {
        constants.push(s.sorted[0]);
        curves.push(undefined);
        continue;
      }
      constants.push(undefined);
      if (n === 0) {
        curves.push(undefined);
        continue;
      }
      const c = new Float64Array(bins);
      for (let k = 0; k < n; k++) {
        const v = s.sorted[k];
        if (v < lo || v > hi) continue;
        c[Math.min(bins - 1, Math.floor((v - lo) / bw))]++;
      }
      const x = new Float64Array(2 * bins + 2);
      const y = new Float64Array(2 * bins + 2);
      x[0] = lo;
      y[0] = 0;
      for (let b = 0; b < bins; b++) {
        const d = c[b] / (n * bw);
        x[2 * b + 1] = lo + b * bw;
        y[2 * b + 1] = d;
        x[2 * b + 2] = lo + (b + 1) * bw;
        y[2 * b + 2] = d;
      }
      x[2 * bins + 1] = hi;
      y[2 * bins + 1] = 0;
      curves.push({ x, y });
    }
  }
  let yMax = 0;
  for (const c of curves) if (c) for (let j = 0; j < c.y.length; j++) yMax = Math.max(yMax, c.y[j]);
  if (!(yMax > 0)) yMax = 1;

  // --- layout
  const xa = axis(lo, hi, Math.max(3, Math.round(width / 110)));
  const ya = axis(0, yMax * 1.06, Math.max(3, Math.round(height / 80)));
  ya.max = yMax * 1.06;
  const notes: string[] = [];
  if (outside > 0) {
    notes.push(
      `x-axis clipped to the ${fmtPct(qLo)}\u2013${fmtPct(qHi)} quantiles: ${fmtCount(outside)} of ${fmtCount(total)} values ` +
        `(${fmtPct(outside / total, 2)}) lie outside and are not shown`,
    );
  }
  if (nonFinite > 0) notes.push(`${fmtCount(nonFinite)} non-finite value${nonFinite === 1 ? '' : 's'} left out`);
  const note = notes.join('; ');
  const { left, yLabelX } = leftMargin(ya.labels);
  const top = title ? 16 + TITLE_FS + 10 : 14;
  const bottom = bottomMargin(note.length > 0);
  const right = 18 + textWidth(xa.labels[xa.labels.length - 1] ?? '', TICK_FS) / 2;
  const plotH = height - top - bottom;
  if (plotH < 60 || width - left - right < 80) optionError(`width × height ${width} × ${height} leaves no room for the plot`);

  const rows: LegendRow[] = stats.map((s, i) => {
    const st = seriesStyle(i);
    const n = s.sorted.length;
    let label = s.label;
    if (n === 0) label += ' (no data)';
    else if (constants[i] !== undefined) label += ` (all = ${fmtValue(constants[i] as number)})`;
    return { color: st.color, dash: st.dash, label, value: showCounts ? fmtCount(n) : undefined, fill: true };
  });
  const header = showCounts ? 'n' : undefined;

  const toPx = (r: Rect) => ({
    sx: (v: number): number => r.x + ((v - lo) / (hi - lo)) * r.w,
    sy: (v: number): number => r.y + r.h - (v / ya.max) * r.h,
  });
  const pixelLines = (r: Rect): { x: number[]; y: number[] }[] => {
    const { sx, sy } = toPx(r);
    const lines: { x: number[]; y: number[] }[] = [];
    curves.forEach((c) => {
      if (c) lines.push({ x: Array.from(c.x, sx), y: Array.from(c.y, sy) });
    });
    constants.forEach((v) => {
      if (v !== undefined) lines.push({ x: [sx(v), sx(v)], y: [r.y + r.h, r.y] });
    });
    return lines;
  };

  let plot: Rect = { x: left, y: top, w: width - left - right, h: plotH };
  let legendSvg = '';
  if (legendMode !== 'none') {
    const legIn = makeLegend(rows, header, plot.w * 0.6);
    const lines = pixelLines(plot);
    const corners: Rect[] = [
      { x: plot.x + plot.w - legIn.w - 8, y: plot.y + 8, w: legIn.w, h: legIn.h },
      { x: plot.x + 8, y: plot.y + 8, w: legIn.w, h: legIn.h },
    ];
    const fits = legIn.h <= plot.h - 16 && legIn.w <= plot.w - 16;
    let chosen: Rect | undefined;
    if (legendMode === 'inside' && fits) chosen = corners[0];
    else if (legendMode === 'auto' && fits) chosen = corners.find((b) => !hitsBox(lines, b, 4, true));
    if (chosen) legendSvg = legIn.render(chosen.x, chosen.y, true);
    else {
      const legOut = makeLegend(rows, header, Math.max(120, width * 0.38));
      plot = { ...plot, w: width - left - 16 - legOut.w - 14 };
      if (plot.w < 80) optionError(`width ${width} leaves no room for the plot and its legend`);
      legendSvg = legOut.render(plot.x + plot.w + 16, plot.y, false);
    }
  }

  const { sx, sy } = toPx(plot);
  const out: string[] = [svgOpen(width, height, title ?? 'Score densities')];
  out.push(renderAxes(plot, xa, ya, xLabel, yLabel, yLabelX));
  out.push(renderFrame(plot));
  const fills: string[] = ['<g stroke="none" fill-opacity="0.14">'];
  const lines: string[] = ['<g fill="none" stroke-width="' + LINE_WIDTH + '" stroke-linejoin="round">'];
  const base = sy(0);
  for (let i = curves.length - 1; i >= 0; i--) {
    const c = curves[i];
    const st = seriesStyle(i);
    const dash = st.dash ? ` stroke-dasharray="${st.dash}"` : '';
    if (c) {
      const px = Array.from(c.x, sx);
      const py = Array.from(c.y, sy);
      const d = linePath(px, py);
      fills.push(`<path d="${d}L${num(px[px.length - 1])},${num(base)}L${num(px[0])},${num(base)}Z" fill="${st.color}"/>`);
      lines.push(`<path d="${d}" stroke="${st.color}"${dash}/>`);
    } else if (constants[i] !== undefined) {
      const x = sx(constants[i] as number);
      lines.push(`<path d="M${num(x)},${num(plot.y + plot.h)}V${num(plot.y)}" stroke="${st.color}"${dash}/>`);
    }
  }
  fills.push('</g>');
  lines.push('</g>');
  out.push(fills.join('\n'));
  out.push(lines.join('\n'));
  // a rug for small sets shows where the actual values are
  const rug: string[] = [];
  stats.forEach((s, i) => {
    if (s.sorted.length === 0 || s.sorted.length > 50) return;
    const d: string[] = [];
    for (const v of s.sorted) if (v >= lo && v <= hi) d.push(`M${num(sx(v))},${num(plot.y + plot.h)}v-7`);
    if (d.length) rug.push(`<path d="${d.join('')}" stroke="${seriesStyle(i).color}" stroke-width="1.2" fill="none"/>`);
  });
  if (rug.length) out.push(rug.join('\n'));
  if (title) out.push(textEl(plot.x + plot.w / 2, 16 + TITLE_FS * 0.8, title, { 'font-size': TITLE_FS, 'font-weight': 'bold', 'text-anchor': 'middle', fill: '#111111' }));
  if (note) {
    const maxW = width - 20;
    out.push(textEl(10, height - 8, truncate(note, maxW, NOTE_FS), { 'font-size': NOTE_FS, fill: '#666666' }));
  }
  if (legendSvg) out.push(legendSvg);
  out.push('</svg>\n');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Panels

/** Options of {@link panelFigure}. */
export interface PanelFigureOptions {
  /** Panels per row (≥ 1). */
  columns: number;
  /** A title above each panel (`titles[i]` for `panels[i]`; missing or empty = none). */
  titles?: readonly (string | undefined)[];
  /** A title above the whole figure. */
  title?: string;
  /** Space between panels in px. Default 8. */
  gap?: number;
}

interface ParsedSvg {
  attrs: [string, string][];
  inner: string;
  width: number;
  height: number;
  viewBox: string;
}

function parseLength(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(px)?\s*$/i.exec(v);
  return m ? Number(m[1]) : undefined;
}

function parseSvg(svg: string, i: number): ParsedSvg {
  if (typeof svg !== 'string') optionError(`panels[${i}] must be an SVG string`);
  const open = /<svg\b([^>]*)>/.exec(svg);
  const close = svg.lastIndexOf('</svg>');
  if (!open || close < open.index) optionError(`panels[${i}] is not an SVG document (no <svg>…</svg>)`);
  const attrs: [string, string][] = [];
  const re = /([A-Za-z_:][-\w:.]*)\s*=\s*("([^"]*)"|'([^']*)')/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(open[1])) !== null) attrs.push([m[1], m[3] ?? m[4] ?? '']);
  const get = (k: string): string | undefined => attrs.find(([a]) => a === k)?.[1];
  const vb = get('viewBox');
  const vbn = vb?.trim().split(/[\s,]+/).map(Number);
  const vbOk = vbn && vbn.length === 4 && vbn.every(Number.isFinite) && vbn[2] > 0 && vbn[3] > 0;
  const width = parseLength(get('width')) ?? (vbOk ? vbn[2] : undefined);
  const height = parseLength(get('height')) ?? (vbOk ? vbn[3] : undefined);
  if (!width || !height) optionError(`panels[${i}] needs numeric width/height (px) or a viewBox`);
  const selfClosing = /\/\s*$/.test(open[1]);
  const inner = selfClosing ? '' : svg.slice(open.index + open[0].length, close);
  return { attrs, inner, width, height, viewBox: vbOk ? vb!.trim() : `0 0 ${num(width)} ${num(height)}` };
}

/** Prefixes every `id` of a panel (and the references to it) so that panels cannot clash. */
function prefixIds(inner: string, prefix: string): string {
  const ids = new Set<string>();
  const re = /\bid\s*=\s*["']([^"']+)["']/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(inner)) !== null) ids.add(m[1]);
  if (ids.size === 0) return inner;
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const id of ids) {
    const e = esc(id);
    inner = inner
      .replace(new RegExp(`(\\bid\\s*=\\s*["'])${e}(["'])`, 'g'), `$1${prefix}${id}$2`)
      .replace(new RegExp(`url\\(\\s*#${e}\\s*\\)`, 'g'), `url(#${prefix}${id})`)
      .replace(new RegExp(`(href\\s*=\\s*["'])#${e}(["'])`, 'g'), `$1#${prefix}${id}$2`);
  }
  return inner;
}

/**
 * Arranges several SVG figures (e.g. one {@link densityFigure} per score, or ROC figures per data set) in a grid of
 * `columns` columns, row by row, in one SVG 1.1 document. Every cell is as large as the largest panel; a panel is
 * centred horizontally at the top of its cell, at its own size, as a nested `<svg>` (so its viewBox and scaling are
 * kept). `id`s inside a panel are prefixed with `p<i>-` so that panels cannot clash. Optional titles go above each
 * panel and above the whole figure.
 *
 * @returns a standalone SVG 1.1 document as a string.
 * @throws HVAEError `ERR_HVAE_OPTION` for no panels, a string that is not an SVG with a size, or a bad option.
 */
export function panelFigure(panels: readonly string[], options: PanelFigureOptions): string {
  if (!Array.isArray(panels) || panels.length === 0) optionError('panelFigure needs a non-empty array of SVG strings');
  if (options === null || typeof options !== 'object') optionError('panelFigure: options { columns } are required');
  checkKeys(options, ['columns', 'titles', 'title', 'gap'], 'panelFigure');
  const { columns } = options;
  if (typeof columns !== 'number' || !Number.isInteger(columns) || columns < 1) {
    optionError(`columns must be a positive integer, got ${String(columns)}`);
  }
  const titles = options.titles ?? [];
  if (!Array.isArray(titles)) optionError('titles must be an array of strings');
  titles.forEach((t, i) => {
    if (t !== undefined && t !== null && typeof t !== 'string') optionError(`titles[${i}] must be a string`);
  });
  const title = checkOptionalText(options.title, 'title');
  const gap = options.gap ?? 8;
  if (typeof gap !== 'number' || !Number.isFinite(gap) || gap < 0) optionError('gap must be a non-negative number');

  const parsed = panels.map((p, i) => parseSvg(p, i));
  const cols = Math.min(columns, parsed.length);
  const rowsN = Math.ceil(parsed.length / cols);
  const cellW = Math.max(...parsed.map((p) => p.width));
  const cellH = Math.max(...parsed.map((p) => p.height));
  const panelTitleH = titles.some((t) => t) ? 13 + 12 : 0;
  const top = title ? 16 + TITLE_FS + 12 : 0;
  const W = Math.ceil(cols * cellW + (cols + 1) * gap);
  const H = Math.ceil(top + rowsN * (panelTitleH + cellH) + (rowsN + 1) * gap);

  const out: string[] = [svgOpen(W, H, title ?? 'Figure')];
  if (title) out.push(textEl(W / 2, 16 + TITLE_FS * 0.8, title, { 'font-size': TITLE_FS, 'font-weight': 'bold', 'text-anchor': 'middle', fill: '#111111' }));
  parsed.forEach((p, i) => {
    const r = Math.floor(i / cols);
    const c = i % cols;
    const cx = gap + c * (cellW + gap);
    const cy = top + gap + r * (cellH + panelTitleH + gap);
    const t = titles[i];
    if (t) {
      out.push(textEl(cx + cellW / 2, cy + 15, truncate(t, cellW - 8, 13), { 'font-size': 13, 'font-weight': 'bold', 'text-anchor': 'middle', fill: '#111111' }));
    }
    const px = cx + (cellW - p.width) / 2;
    const py = cy + panelTitleH; // top-aligned, so that the panel title sits right above its panel
    const keep = p.attrs
      .filter(([k]) => !['x', 'y', 'width', 'height', 'viewBox', 'version', 'xmlns', 'baseProfile'].includes(k))
      .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
      .join('');
    out.push(
      `<svg x="${num(px)}" y="${num(py)}" width="${num(p.width)}" height="${num(p.height)}" viewBox="${escapeXml(p.viewBox)}"${keep}>` +
        prefixIds(p.inner, `p${i}-`) +
        '</svg>',
    );
  });
  out.push('</svg>\n');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Output

/** Options of {@link writeFigure}. */
export interface WriteFigureOptions {
  /** PNG resolution as a multiple of the SVG's pixel size (1 = one PNG pixel per SVG px). Default 2. */
  scale?: number;
}

function writeAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* ignore */
    }
    throw new HVAEError('ERR_HVAE_IO', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Writes a figure. The file name decides the format:
 * - `*.svg`: the SVG text (UTF-8);
 * - `*.png`: the SVG rendered by sharp (librsvg) at `scale` × its pixel size (default 2, i.e. 144 dpi for a
 *   figure sized at 72 dpi: a 640 × 400 figure gives a 1280 × 800 PNG);
 * - no extension (a base path such as `out/roc`): both `out/roc.svg` and `out/roc.png`.
 *
 * Writes are atomic (a temporary file in the same directory, then a rename), parent directories are created, and
 * the PNG is rendered completely before anything is written.
 *
 * @throws HVAEError `ERR_HVAE_OPTION` for another extension or a bad option, `ERR_HVAE_FORMAT` when sharp cannot
 *   render the SVG, `ERR_HVAE_IO` when a file cannot be written.
 */
export async function writeFigure(file: string, svg: string, options: WriteFigureOptions = {}): Promise<void> {
  if (typeof file !== 'string' || file.length === 0) optionError('writeFigure: file must be a non-empty string');
  if (typeof svg !== 'string' || !/<svg\b/.test(svg)) optionError('writeFigure: svg must be an SVG document string');
  if (options === null || typeof options !== 'object') optionError('writeFigure: options must be an object');
  checkKeys(options, ['scale'], 'writeFigure');
  const scale = options.scale ?? 2;
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0 || scale > 16) optionError(`scale must be a number in (0, 16], got ${String(scale)}`);
  const ext = path.extname(file).toLowerCase();
  let targets: { file: string; png: boolean }[];
  if (ext === '.svg') targets = [{ file, png: false }];
  else if (ext === '.png') targets = [{ file, png: true }];
  else if (ext === '') targets = [{ file: `${file}.svg`, png: false }, { file: `${file}.png`, png: true }];
  else optionError(`writeFigure: the file must end in .svg or .png, or have no extension (both), got '${ext}'`);

  let png: Buffer | undefined;
  if (targets.some((t) => t.png)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sharp = require('sharp') as typeof import('sharp');
    try {
      png = await sharp(Buffer.from(svg, 'utf8'), { density: 72 * scale }).png().toBuffer();
    } catch (err) {
      throw new HVAEError('ERR_HVAE_FORMAT', `cannot render the SVG to PNG: ${(err as Error).message}`, { cause: err });
    }
  }
  try {
    mkdirp(path.dirname(path.resolve(file)));
  } catch (err) {
    throw new HVAEError('ERR_HVAE_IO', `cannot create the directory of ${file}: ${(err as Error).message}`, { cause: err });
  }
  for (const t of targets) writeAtomic(t.file, t.png ? (png as Buffer) : svg);
}
