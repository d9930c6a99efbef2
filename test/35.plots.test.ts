/**
 * SVG figures (ts/plots.ts): well-formed SVG 1.1, legend AUROC values equal to oodMetrics, text escaping, edge cases
 * (identical scores, one curve, ten curves, 10^6 scores), panels, and writeFigure's SVG/PNG output.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  densityFigure,
  escapeXml,
  formatTicks,
  linePath,
  niceTicks,
  panelFigure,
  rocFigure,
  seriesStyle,
  thinRoc,
  writeFigure,
} from '../lib/plots.js';
import { oodMetrics } from '../lib/metrics.js';
import { HVAEError } from '../lib/errors.js';
import { tmpDir } from './setup.js';

/** A small deterministic normal sampler (LCG + Box–Muller). */
function normals(n: number, mu: number, sd: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mu + sd * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/**
 * A tiny well-formedness checker: tags balance and nest, attributes are quoted and unique, character data and
 * attribute values contain no raw `<` and only known entities, one root `<svg>` with no trailing content.
 */
function checkXml(svg: string): { root: Record<string, string>; tags: Map<string, number> } {
  const re = /<!--[\s\S]*?-->|<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/g;
  const entity = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  const stack: string[] = [];
  const tags = new Map<string, number>();
  let root: Record<string, string> | undefined;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(svg)) !== null) {
    const text = svg.slice(last, m.index);
    assert.ok(!text.includes('<') && !text.includes('>'), `raw < or > in text near offset ${last}: ${JSON.stringify(text.slice(0, 80))}`);
    assert.ok(!entity.test(text), `bare & in text near offset ${last}`);
    if (stack.length === 0) assert.ok(root === undefined ? text.trim() === '' : false, 'content outside the root element');
    last = re.lastIndex;
    if (m[0].startsWith('<!--')) continue;
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      assert.equal(attrText.trim(), '', `attributes on a closing tag </${name}>`);
      assert.equal(stack.pop(), name, `</${name}> does not close the open element`);
      continue;
    }
    const attrs: Record<string, string> = {};
    const ar = /([A-Za-z_:][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
    let a: RegExpExecArray | null;
    while ((a = ar.exec(attrText)) !== null) {
      assert.ok(!(a[1] in attrs), `duplicate attribute ${a[1]} on <${name}>`);
      const v = a[2] ?? a[3];
      assert.ok(!entity.test(v), `bare & in attribute ${a[1]} of <${name}>`);
      attrs[a[1]] = v;
    }
    if (root === undefined) {
      assert.equal(name, 'svg', 'the root element is <svg>');
      root = attrs;
    } else assert.ok(stack.length > 0, `second root element <${name}>`);
    tags.set(name, (tags.get(name) ?? 0) + 1);
    if (!selfClose) stack.push(name);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(svg.slice(last).trim(), '', 'trailing content after the root element');
  assert.ok(root, 'no root element');
  return { root, tags };
}

/** Checks the SVG 1.1 root attributes and returns the figure size. */
function checkRoot(svg: string): { width: number; height: number; tags: Map<string, number> } {
  const { root, tags } = checkXml(svg);
  assert.equal(root.xmlns, 'http://www.w3.org/2000/svg');
  assert.equal(root.version, '1.1');
  const width = Number(root.width);
  const height = Number(root.height);
  assert.ok(width > 0 && height > 0, 'numeric width and height');
  assert.equal(root.viewBox, `0 0 ${root.width} ${root.height}`);
  return { width, height, tags };
}

function throwsOption(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION');
}

/** The stroke colour and dash of every curve path (paths inside the stroke-width group) of a ROC/density figure. */
function curveStyles(svg: string): string[] {
  const out: string[] = [];
  const re = /<path d="M[^"]*" stroke="(#[0-9A-Fa-f]{6})"(?: stroke-dasharray="([^"]*)")?\/>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(svg)) !== null) out.push(`${m[1]}|${m[2] ?? ''}`);
  return out;
}

describe('plots: helpers', () => {
  it('niceTicks gives nice steps inside the range', () => {
    assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0, 1, 4), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(niceTicks(-3.7, 12.1, 5), [-2.5, 0, 2.5, 5, 7.5, 10]);
    assert.deepEqual(niceTicks(1, 0, 2), [0, 0.5, 1]);
    assert.deepEqual(niceTicks(5, 5, 5), [5]);
    assert.deepEqual(niceTicks(0.1, 0.35, 5), [0.1, 0.15, 0.2, 0.25, 0.3, 0.35]);
    const big = niceTicks(-1234567, 9876543, 6);
    assert.ok(big.length >= 4 && big.length <= 9);
    throwsOption(() => niceTicks(0, Infinity, 5));
    throwsOption(() => niceTicks(NaN, 1, 5));
  });

  it('formatTicks uses the same decimals for all ticks and a real minus sign', () => {
    assert.deepEqual(formatTicks([0, 0.2, 0.4, 0.6, 0.8, 1]), ['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
    assert.deepEqual(formatTicks([-2.5, 0, 2.5]), ['\u22122.5', '0.0', '2.5']);
    assert.deepEqual(formatTicks([0, 1000, 2000]), ['0', '1000', '2000']);
    assert.deepEqual(formatTicks([0, 5e6, 1e7]), ['0e0', '5e6', '1e7']);
  });

  it('linePath rounds, skips duplicates and breaks at non-finite points', () => {
    assert.equal(linePath([0, 1.005, 1.0049, 2], [0, 2, 2, 3.5]), 'M0,0L1,2L2,3.5');
    assert.equal(linePath([0, 1, NaN, 3, 4], [0, 1, 1, 3, 4]), 'M0,0L1,1M3,3L4,4');
    assert.equal(linePath([], []), '');
    throwsOption(() => linePath([1, 2], [1]));
  });

  it('escapeXml escapes markup characters and drops characters XML forbids', () => {
    assert.equal(escapeXml(`a<b & c>"d'`), 'a&lt;b &amp; c&gt;&quot;d&apos;');
    assert.equal(escapeXml('x\u0000y\u0007z\nw'), 'xyz w');
    assert.equal(escapeXml('\uD800lone'), 'lone');
    assert.equal(escapeXml('ok \u00e9 \u{1F600}'), 'ok \u00e9 \u{1F600}');
  });

  it('thinRoc keeps long curves under the point budget and close to the original', () => {
    const n = 100001;
    const x = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = i / (n - 1);
      y[i] = Math.sqrt(x[i]);
    }
    const t = thinRoc(x, y, 2000);
    assert.ok(t.fpr.length <= 2002, `${t.fpr.length} points`);
    assert.equal(t.fpr[0], 0);
    assert.equal(t.fpr[t.fpr.length - 1], 1);
    assert.equal(t.tpr[t.tpr.length - 1], 1);
    // max vertical gap between the thinned polyline and the curve
    let worst = 0;
    let k = 0;
    for (let i = 0; i < n; i += 37) {
      while (t.fpr[k + 1] < x[i]) k++;
      const f = (x[i] - t.fpr[k]) / (t.fpr[k + 1] - t.fpr[k] || 1);
      worst = Math.max(worst, Math.abs(y[i] - (t.tpr[k] + f * (t.tpr[k + 1] - t.tpr[k]))));
    }
    assert.ok(worst <= 2 / 2000, `deviation ${worst}`);
    const short = thinRoc([0, 0.5, 1], [0, 0.7, 1]);
    assert.deepEqual(short, { fpr: [0, 0.5, 1], tpr: [0, 0.7, 1] });
  });

  it('seriesStyle gives ten distinct colour/dash pairs, neighbours differing in both', () => {
    const s = Array.from({ length: 10 }, (_, i) => seriesStyle(i));
    assert.equal(new Set(s.map((x) => `${x.color}|${x.dash}`)).size, 10);
    for (let i = 1; i < 10; i++) {
      assert.notEqual(s[i].color, s[i - 1].color);
      assert.notEqual(s[i].dash, s[i - 1].dash);
    }
  });
});

describe('plots: rocFigure', () => {
  const curves = [
    { label: 'ELBO', scoresIn: normals(400, 0, 1, 1), scoresOut: normals(300, 0.4, 1, 2) },
    // integer scores: many within- and cross-class ties
    { label: 'LLR>2', scoresIn: Array.from(normals(500, 0, 2, 3), Math.round), scoresOut: Array.from(normals(200, 3, 2, 4), Math.round) },
    { label: 'L>1', scoresIn: new Float32Array(normals(250, 0, 1, 5)), scoresOut: new Float32Array(normals(250, 1.2, 1, 6)) },
  ];

  it('is well-formed SVG 1.1 with axes, chance line and the legend AUROCs of oodMetrics', () => {
    const svg = rocFigure(curves, { title: 'FashionMNIST vs MNIST' });
    const { width, height, tags } = checkRoot(svg);
    assert.equal(height, 500);
    assert.ok(width >= 400 && width < 600, `width ${width}`);
    assert.ok((tags.get('text') ?? 0) > 15);
    assert.match(svg, /<title>FashionMNIST vs MNIST<\/title>/);
    assert.match(svg, />False positive rate</);
    assert.match(svg, />True positive rate</);
    assert.match(svg, /stroke-dasharray="4 4"/); // chance diagonal
    assert.match(svg, />AUROC</);
    for (const c of curves) {
      const auc = oodMetrics(c.scoresIn, c.scoresOut).auroc.toFixed(3);
      assert.ok(svg.includes(`>${auc}</text>`), `legend has ${c.label}'s AUROC ${auc}`);
      assert.ok(svg.includes(`>${escapeXml(c.label)}</text>`), `legend has ${c.label}`);
    }
    assert.deepEqual(curveStyles(svg).sort(), [0, 1, 2].map((i) => `${seriesStyle(i).color}|${seriesStyle(i).dash}`).sort());
    assert.equal(rocFigure(curves, { title: 'FashionMNIST vs MNIST' }), svg, 'deterministic');
    assert.ok(!/\bid="/.test(svg), 'no ids');
  });

  it('escapes labels and titles', () => {
    const svg = rocFigure([{ label: `a<b & c>"d'`, scoresIn: [0, 1], scoresOut: [2, 3] }], { title: 'x < y && z', xLabel: '<FPR>' });
    checkRoot(svg);
    assert.ok(svg.includes('a&lt;b &amp; c&gt;&quot;d&apos;'));
    assert.ok(svg.includes('x &lt; y &amp;&amp; z'));
    assert.ok(svg.includes('&lt;FPR&gt;'));
    assert.ok(!svg.includes('a<b'));
  });

  it('handles identical scores, a perfect and a reversed detector, one curve', () => {
    const svg = rocFigure([
      { label: 'identical', scoresIn: [1, 1, 1], scoresOut: [1, 1] },
      { label: 'perfect', scoresIn: [0, 1, 2], scoresOut: [5, 6] },
      { label: 'reversed', scoresIn: [5, 6], scoresOut: [0, 1, 2] },
    ]);
    checkRoot(svg);
    assert.ok(svg.includes('>0.500</text>'));
    assert.ok(svg.includes('>1.000</text>'));
    assert.ok(svg.includes('>0.000</text>'));
    const one = rocFigure([{ label: 'only', scoresIn: [0.1], scoresOut: [0.9] }], { legend: 'inside', width: 400, height: 400 });
    const r = checkRoot(one);
    assert.equal(r.width, 400);
    assert.equal(r.height, 400);
    assert.ok(one.includes('>1.000</text>'));
  });

  it('draws ten curves with distinct styles and a legend outside when it would cover curves', () => {
    const ten = Array.from({ length: 10 }, (_, i) => ({
      label: `score ${i}`,
      scoresIn: normals(300, 0, 1, 100 + i),
      scoresOut: normals(300, (i - 3) * 0.4, 1, 200 + i),
    }));
    const svg = rocFigure(ten);
    const { width } = checkRoot(svg);
    const narrow = checkRoot(rocFigure(ten.slice(0, 1))).width;
    assert.ok(width > narrow + 100, 'widened for the outside legend');
    const styles = curveStyles(svg);
    assert.equal(styles.length, 10);
    assert.equal(new Set(styles).size, 10);
    for (const c of ten) assert.ok(svg.includes(`>${oodMetrics(c.scoresIn, c.scoresOut).auroc.toFixed(3)}</text>`));
    // with a fixed width the figure keeps it
    assert.equal(checkRoot(rocFigure(ten, { width: 700 })).width, 700);
    assert.equal(checkRoot(rocFigure(ten, { legend: 'none' })).width < width, true);
  });

  it('plots 10^6 + 10^6 scores quickly with at most ~2000 points per curve', function () {
    this.timeout(20000);
    const n = 1_000_000;
    const a = new Float64Array(n);
    const b = new Float64Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = s / 4294967296;
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      b[i] = s / 4294967296 + 0.25;
    }
    const t0 = Date.now();
    const svg = rocFigure([{ label: 'big', scoresIn: a, scoresOut: b }]);
    const ms = Date.now() - t0;
    assert.ok(ms < 8000, `${ms} ms`);
    checkRoot(svg);
    const d = /<path d="(M[^"]*)" stroke="#0072B2"\/>/.exec(svg);
    assert.ok(d, 'the curve path');
    const points = d[1].split(/[ML]/).length - 1;
    assert.ok(points > 50 && points <= 2002, `${points} points`);
    assert.ok(svg.length < 200_000, `${svg.length} bytes`);
    // exact area 1 - 0.75² / 2 = 0.71875 up to sampling noise; the legend shows oodMetrics' value
    assert.ok(svg.includes(`>${oodMetrics(a, b).auroc.toFixed(3)}</text>`));
  });

  it('rejects bad input with typed errors', () => {
    throwsOption(() => rocFigure([]));
    throwsOption(() => rocFigure([{ label: 'x', scoresIn: [], scoresOut: [1] }]));
    throwsOption(() => rocFigure([{ label: 3 as unknown as string, scoresIn: [0], scoresOut: [1] }]));
    throwsOption(() => rocFigure(curves, { colour: 'red' } as never));
    throwsOption(() => rocFigure(curves, { width: 10 }));
    throwsOption(() => rocFigure(curves, { legend: 'top' as never }));
    assert.throws(
      () => rocFigure([{ label: 'x', scoresIn: [0, NaN], scoresOut: [1] }]),
      (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_NONFINITE',
    );
  });
});

describe('plots: densityFigure', () => {
  it('draws overlaid KDEs with a legend and the clipping note', () => {
    const id = normals(5000, 2, 0.4, 11);
    id[0] = 80; // outliers must not squash the plot
    id[1] = -50;
    const svg = densityFigure(
      [
        { label: 'FashionMNIST (in)', values: id },
        { label: 'MNIST <OOD>', values: normals(3000, 3, 0.6, 12) },
      ],
      { title: 'LLR>2', xLabel: 'score (nats)' },
    );
    const { width, height } = checkRoot(svg);
    assert.equal(width, 640);
    assert.equal(height, 400);
    assert.ok(svg.includes('MNIST &lt;OOD&gt;'));
    assert.ok(svg.includes('LLR&gt;2'));
    assert.match(svg, /x-axis clipped to the 0\.5%\u201399\.5% quantiles: \d+ of 8,000 values/);
    assert.ok(svg.includes('>5,000</text>') && svg.includes('>3,000</text>'), 'counts in the legend');
    assert.equal(curveStyles(svg).length, 2);
    // x ticks stay within the bulk of the data, not out to the outliers
    const xt = [...svg.matchAll(/text-anchor="middle">(\u2212?[\d.]+)<\/text>/g)].map((m) => Number(m[1].replace('\u2212', '-')));
    assert.ok(xt.length >= 3 && Math.max(...xt) < 10 && Math.min(...xt) > -1, `x ticks ${xt}`);
    // no note when nothing is clipped
    assert.ok(!densityFigure([{ label: 'a', values: [1, 2, 3] }], { clipQuantiles: [0, 1] }).includes('clipped'));
  });

  it('handles identical values, a single value, tiny and empty series and non-finite values', () => {
    const svg = densityFigure([
      { label: 'constant', values: new Float64Array(100).fill(3) },
      { label: 'one', values: [7] },
      { label: 'two', values: [1, 2] },
      { label: 'tiny', values: [1, 1.5, 4, NaN, Infinity] },
      { label: 'empty', values: [] },
    ]);
    checkRoot(svg);
    assert.ok(svg.includes('constant (all = 3)'));
    assert.ok(svg.includes('one (all = 7)'));
    assert.ok(svg.includes('empty (no data)'));
    assert.ok(svg.includes('2 non-finite values left out'));
    assert.ok(!/NaN|Infinity/.test(svg));
    const allSame = densityFigure([{ label: 'a', values: [5, 5] }, { label: 'b', values: [5] }]);
    checkRoot(allSame);
    assert.ok(!/NaN|Infinity/.test(allSame));
    const zero = densityFigure([{ label: 'z', values: [0, 0, 0] }], { kind: 'histogram' });
    checkRoot(zero);
    assert.ok(!/NaN|Infinity/.test(zero));
  });

  it('draws histograms, and 10^6 values quickly', function () {
    this.timeout(20000);
    const h = densityFigure([{ label: 'in', values: normals(2000, 0, 1, 21) }, { label: 'out', values: normals(2000, 1, 2, 22) }], { kind: 'histogram', bins: 40 });
    checkRoot(h);
    assert.equal(curveStyles(h).length, 2);
    const big = normals(1_000_000, 0, 1, 23);
    const t0 = Date.now();
    const svg = densityFigure([{ label: 'big', values: big }, { label: 'small', values: normals(1000, 1, 1, 24) }]);
    const ms = Date.now() - t0;
    assert.ok(ms < 8000, `${ms} ms`);
    checkRoot(svg);
    assert.ok(svg.length < 100_000);
  });

  it('rejects bad options', () => {
    throwsOption(() => densityFigure([]));
    throwsOption(() => densityFigure([{ label: 'a', values: [1] }], { clipQuantiles: [0.9, 0.1] }));
    throwsOption(() => densityFigure([{ label: 'a', values: [1] }], { kind: 'violin' as never }));
    throwsOption(() => densityFigure([{ label: 'a', values: [1] }], { bins: 1 }));
    throwsOption(() => densityFigure([{ label: 'a', values: ['x'] as unknown as number[] }]));
  });
});

describe('plots: panelFigure', () => {
  it('arranges panels in a grid as nested SVGs, with escaped titles and unique ids', () => {
    const a = densityFigure([{ label: 'a', values: normals(200, 0, 1, 31) }], { width: 300, height: 200 });
    const b = rocFigure([{ label: 'b', scoresIn: [0, 1, 2], scoresOut: [1, 2, 3] }], { width: 300, height: 300 });
    const withIds =
      '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">' +
      '<defs><clipPath id="c"><rect width="10" height="10"/></clipPath></defs><rect clip-path="url(#c)" width="50" height="50"/></svg>';
    const svg = panelFigure([a, b, withIds, withIds], { columns: 2, titles: ['(a) <ELBO>', '(b) & ROC'], title: 'All' });
    const { width, height, tags } = checkRoot(svg);
    assert.equal(tags.get('svg'), 5);
    assert.equal(width, 2 * 300 + 3 * 8);
    assert.ok(height >= 2 * 300);
    assert.ok(svg.includes('(a) &lt;ELBO&gt;') && svg.includes('(b) &amp; ROC'));
    assert.ok(svg.includes('id="p2-c"') && svg.includes('url(#p2-c)') && svg.includes('id="p3-c"'));
    assert.ok(!svg.includes('<?xml'));
    throwsOption(() => panelFigure([], { columns: 1 }));
    throwsOption(() => panelFigure([a], { columns: 0 }));
    throwsOption(() => panelFigure(['<g/>'], { columns: 1 }));
  });
});

describe('plots: writeFigure', () => {
  const svg = rocFigure([{ label: 'x', scoresIn: normals(100, 0, 1, 41), scoresOut: normals(100, 1, 1, 42) }], { width: 400, height: 360 });

  function pngSize(file: string): { width: number; height: number } {
    const buf = fs.readFileSync(file);
    assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }

  it('writes SVG, PNG (2x by default) and both for a base path, creating directories atomically', async function () {
    this.timeout(30000);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sharp = require('sharp') as typeof import('sharp');
    const dir = path.join(tmpDir('plots-'), 'a', 'b');
    await writeFigure(path.join(dir, 'roc.svg'), svg);
    assert.equal(fs.readFileSync(path.join(dir, 'roc.svg'), 'utf8'), svg);

    await writeFigure(path.join(dir, 'roc.png'), svg);
    assert.deepEqual(pngSize(path.join(dir, 'roc.png')), { width: 800, height: 720 });
    const meta = await sharp(path.join(dir, 'roc.png')).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 800);
    assert.equal(meta.height, 720);

    await writeFigure(path.join(dir, 'one.png'), svg, { scale: 1 });
    const m1 = await sharp(path.join(dir, 'one.png')).metadata();
    assert.deepEqual([m1.width, m1.height], [400, 360]);
    // not blank: the plot has dark pixels
    const stats = await sharp(path.join(dir, 'one.png')).stats();
    assert.ok(stats.channels[0].min < 100);

    await writeFigure(path.join(dir, 'both'), svg, { scale: 1 });
    assert.equal(fs.readFileSync(path.join(dir, 'both.svg'), 'utf8'), svg);
    assert.deepEqual(pngSize(path.join(dir, 'both.png')), { width: 400, height: 360 });

    // density and panel figures render too
    const dens = densityFigure([{ label: 'a & b', values: normals(500, 0, 1, 43) }, { label: 'c', values: [1, 1, 1] }], { width: 320, height: 240 });
    const panel = panelFigure([dens, dens, svg], { columns: 2, titles: ['<1>', '2', '3'] });
    await writeFigure(path.join(dir, 'panel.png'), panel, { scale: 1 });
    const mp = await sharp(path.join(dir, 'panel.png')).metadata();
    assert.equal(mp.width, Number(/width="(\d+)"/.exec(panel)![1]));
    assert.equal(mp.height, Number(/height="(\d+)"/.exec(panel)![1]));

    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
    await assert.rejects(writeFigure(path.join(dir, 'x.jpg'), svg), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION');
    await assert.rejects(writeFigure(path.join(dir, 'x.png'), 'not svg'), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION');
  });
});
