/**
 * The TypeScript examples of README.md and docs/*.md type-check against the package's own declarations
 * (lib/index.d.ts as `'hvae-native'`, strict mode): an example that a user copies must compile. Each block gets
 * ambient declarations for the values it takes as given (the user's pixels, scores, ...), appended so that compiler
 * line numbers still point into the block. Blocks that are signatures rather than code are listed as such.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { ROOT, tmpDir } from './setup.js';

interface Block {
  file: string;
  line: number;
  code: string;
}

/** Every ```ts block of a Markdown file, with the line its code starts on. */
function tsBlocks(file: string): Block[] {
  const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```ts') continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !lines[j].startsWith('```')) j++;
    out.push({ file, line: start + 1, code: lines.slice(start, j).join('\n') });
    i = j;
  }
  return out;
}

/** What each block takes as given, by file and first code line (a change to a block shows up here). */
const GIVEN: Record<string, string> = {
  "README.md:import { HVAE, loadDataset, OODDetector, type ImageBatch } from 'hvae-native';":
    "declare const uint8Pixels: Uint8Array; declare const n: number; declare const idValidationDataset: import('hvae-native').Dataset;",
  "docs/data.md:import { loadDataset, batches, splitTrainValidation } from 'hvae-native'; // re-exported from ts/data/index.ts": '',
  "docs/figures.md:import { rocFigure, densityFigure, panelFigure, writeFigure } from 'hvae-native';":
    'declare const elboIn: Float64Array, elboOut: Float64Array, llrIn: Float64Array, llrOut: Float64Array;',
  "docs/metrics.md:import { OODMetricAccumulator, oodMetrics, rocCurve, fprAtTpr } from 'hvae-native';":
    'declare const llrFashionTest: Float64Array, llrMnistTest: Float64Array, elboIn: Float64Array, elboOut: Float64Array;\n' +
    'declare const inBatches: { scores: Float64Array }[], oodBatches: { scores: Float64Array }[];\n' +
    'declare const mixedScores: Float64Array, mixedLabels: Uint8Array, scoresIn: Float64Array, scoresOut: Float64Array;',
};
/** Blocks that show signatures, not runnable code. */
const SIGNATURES = new Set(['docs/data.md:interface Dataset {']);

const DOCS = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

function typeCheck(blocks: Block[]): string[] {
  const dir = tmpDir('docs-ts');
  const files = blocks.map((b, i) => {
    const key = `${b.file}:${b.code.split('\n')[0]}`;
    const f = path.join(dir, `block${i}.ts`);
    fs.writeFileSync(f, `${b.code}\n${GIVEN[key]}\nexport {};\n`);
    return { f, b };
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    paths: { 'hvae-native': [path.join(ROOT, 'lib', 'index.d.ts')] },
  };
  const program = ts.createProgram(files.map((x) => x.f), options);
  const errors: string[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const src = d.file && files.find((x) => path.resolve(x.f) === path.resolve(d.file!.fileName));
    if (src && d.start !== undefined) {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start);
      errors.push(`${src.b.file}:${src.b.line + line}: ${msg}`);
    } else {
      errors.push(msg);
    }
  }
  return errors;
}

describe('36 docs: the TypeScript examples compile', function () {
  this.timeout(120000);
  const blocks = DOCS.flatMap(tsBlocks);

  it('every ```ts block is either code with its givens listed here, or a known signature block', () => {
    assert.ok(blocks.length >= 5, `found only ${blocks.length} blocks`);
    for (const b of blocks) {
      const key = `${b.file}:${b.code.split('\n')[0]}`;
      assert.ok(key in GIVEN || SIGNATURES.has(key), `${b.file}:${b.line}: a new or changed example; list what it takes as given in test/36 (${key})`);
    }
  });

  it('README.md and docs/*.md examples type-check against lib/index.d.ts (strict)', () => {
    const code = blocks.filter((b) => !SIGNATURES.has(`${b.file}:${b.code.split('\n')[0]}`));
    assert.ok(code.some((b) => b.file === 'README.md'), 'the README quick start is among the checked blocks');
    const errors = typeCheck(code);
    assert.deepEqual(errors, []);
  });

  it('the check bites: the quick start without its ImageBatch annotation does not compile', () => {
    const readme = blocks.find((b) => b.file === 'README.md')!;
    const broken = { ...readme, code: readme.code.replace('const images: ImageBatch = ', 'const images = ') };
    assert.notEqual(broken.code, readme.code);
    const errors = typeCheck([broken]);
    assert.ok(errors.some((e) => /shape/.test(e) && /README\.md:\d+/.test(e)), errors.join('\n'));
  });
});
