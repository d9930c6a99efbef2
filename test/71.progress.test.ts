/**
 * The CLI's progress bar: rate and ETA per phase (one bar is reused across the datasets of `main`), a line per 10%
 * off a terminal, and on a terminal one line per phase.
 */
import { strict as assert } from 'node:assert';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ProgressBar } = require('../lib/progress.js') as typeof import('../lib/progress.js');

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = { isTTY, columns: 200, write: (s: string) => { chunks.push(s); return true; } } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

describe('71 progress bar', () => {
  const realNow = Date.now;
  let now = 0;
  beforeEach(() => { now = 1_000_000; Date.now = () => now; });
  afterEach(() => { Date.now = realNow; });

  it('a new label starts a new phase: its rate and ETA count from the end of the previous one', () => {
    const { stream, text } = fakeStream(false);
    const bar = new ProgressBar('scoring', 1, { stream });
    now += 10_000;
    bar.update(500, '', 500, 'scoring A');
    now += 2_000;
    bar.update(100, '', 1000, 'scoring B');
    now += 2_000;
    bar.update(200, '', 1000, 'scoring B');
    const lines = text().trim().split('\n');
    assert.equal(lines[0], 'scoring A 100% 500/500 50.0/s eta 0:00');
    // 100 images in the 2 s since A ended: 50/s and 18 s to go (not 100 over 12 s since the bar was made).
    assert.equal(lines[1], 'scoring B  10% 100/1000 50.0/s eta 0:18');
    assert.equal(lines[2], 'scoring B  20% 200/1000 50.0/s eta 0:16');
    assert.equal(lines.length, 3);
  });

  it('off a terminal it prints at each 10% step, and again for each new phase', () => {
    const { stream, text } = fakeStream(false);
    const bar = new ProgressBar('x', 100, { stream });
    for (let i = 1; i <= 100; i++) { now += 10; bar.update(i); }
    for (let i = 1; i <= 100; i++) { now += 10; bar.update(i, '', 100, 'y'); }
    const lines = text().trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('x ')).length, 11); // 0%, 10%, ..., 100%
    assert.equal(lines.filter((l) => l.startsWith('y ')).length, 11);
  });

  it('on a terminal a finished phase keeps its line: a newline before the next phase redraws', () => {
    const { stream, text } = fakeStream(true);
    const bar = new ProgressBar('scoring', 1, { stream });
    now += 1000;
    bar.update(10, '', 10, 'scoring A');
    now += 1000;
    bar.update(5, '', 10, 'scoring B');
    bar.done();
    const out = text();
    const a = out.indexOf('scoring A 100%');
    const b = out.indexOf('scoring B  50%');
    assert.ok(a >= 0 && b > a, out);
    assert.ok(out.slice(a, b).includes('\n'), 'phase A ended with a newline before phase B was drawn');
    assert.ok(out.endsWith('\n'));
  });
});
