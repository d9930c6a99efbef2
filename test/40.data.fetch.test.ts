/**
 * fetchDataset against a local HTTP server on 127.0.0.1 serving ../shared/data (a mirror laid out like a data root),
 * checksum failures, HTTP errors, and the offline error (an unreachable port, and an injected fetch that fails like a
 * machine without internet).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { HVAEError } from '../lib/errors.js';
import { downloadPlan, fetchDataset, loadDataset } from '../lib/data/datasets.js';
import type { FetchLike } from '../lib/data/datasets.js';
import { SHARED, tmpDir } from './setup.js';

const DATA = path.join(SHARED, 'data');

interface Mirror { url: string; requests: string[]; corrupt: Set<string>; close(): Promise<void> }

async function startMirror(): Promise<Mirror> {
  const requests: string[] = [];
  const corrupt = new Set<string>();
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    requests.push(rel);
    const file = path.resolve(DATA, rel);
    if (!file.startsWith(DATA + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    let body = fs.readFileSync(file);
    if (corrupt.has(rel)) { body = Buffer.from(body); body[body.length >> 1] ^= 0xff; }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    corrupt,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function leftovers(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.part'));
}

describe('40.data.fetch: downloads', function () {
  this.timeout(60000);
  let mirror: Mirror;
  before(async () => { mirror = await startMirror(); });
  after(async () => { await mirror.close(); });

  it('downloads MNIST test from a mirror, verifies it, and loads it; a second fetch finds it present', async () => {
    const root = tmpDir();
    const progress: number[] = [];
    const r = await fetchDataset('MNIST', { split: 'test', root, baseUrl: mirror.url, onProgress: (p) => progress.push(p.bytes) });
    assert.equal(r.root, root);
    assert.deepEqual(r.files.map((f) => [path.relative(root, f.path), f.status, f.verified, f.bytes]), [
      ['mnist/t10k-images-idx3-ubyte.gz', 'downloaded', true, 1648877],
      ['mnist/t10k-labels-idx1-ubyte.gz', 'downloaded', true, 4542],
    ]);
    assert.equal(r.files[0].sha256, '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6');
    assert.equal(r.files[0].url, `${mirror.url}/mnist/t10k-images-idx3-ubyte.gz`);
    assert.ok(progress.length > 0 && progress[progress.length - 1] === 4542);
    assert.deepEqual(leftovers(root), []);
    const ds = await loadDataset('MNIST', { split: 'test', root });
    assert.equal(ds.length, 10000);
    const before = mirror.requests.length;
    const again = await fetchDataset('MNIST', { split: 'test', root, baseUrl: mirror.url });
    assert.deepEqual(again.files.map((f) => f.status), ['present', 'present']);
    assert.equal(mirror.requests.length, before, 'nothing downloaded again');
  });

  it('tries the sources of a split in order: an HTTP 404 moves on to the next', async () => {
    const root = tmpDir();
    const r = await fetchDataset('notMNIST', { split: 'test', root, baseUrl: mirror.url });
    assert.ok(mirror.requests.includes('notmnist/notMNIST_small.tar.gz'));
    assert.deepEqual(r.files.map((f) => path.basename(f.path)), ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']);
    const ds = await loadDataset('notMNIST', { split: 'test', root });
    assert.equal(ds.sourceId, 'sample-idx-gz');
    const c = await fetchDataset('CIFAR10', { split: 'test', root, baseUrl: mirror.url });
    assert.deepEqual(c.files.map((f) => [path.relative(root, f.path), f.verified]), [['cifar10/cifar10-test-png.tar.gz', true]]);
  });

  it('a checksum mismatch is ERR_HVAE_DATA and leaves no file behind', async () => {
    const root = tmpDir();
    mirror.corrupt.add('mnist/t10k-labels-idx1-ubyte.gz');
    try {
      await assert.rejects(fetchDataset('MNIST', { split: 'test', root, baseUrl: mirror.url }), (e: unknown) => {
        assert.ok(e instanceof HVAEError && e.code === 'ERR_HVAE_DATA', String(e));
        assert.match(e.message, /checksum mismatch/);
        assert.match(e.message, /t10k-labels-idx1-ubyte\.gz/);
        return true;
      });
    } finally {
      mirror.corrupt.clear();
    }
    assert.ok(!fs.existsSync(path.join(root, 'mnist', 't10k-labels-idx1-ubyte.gz')));
    assert.deepEqual(leftovers(root), []);
  });

  it('HTTP errors on every source: ERR_HVAE_DATA listing each URL', async () => {
    await assert.rejects(fetchDataset('KMNIST', { split: 'test', root: tmpDir(), baseUrl: mirror.url }), (e: unknown) => {
      assert.ok(e instanceof HVAEError && e.code === 'ERR_HVAE_DATA');
      assert.match(e.message, /every source failed/);
      assert.ok(e.message.includes(`${mirror.url}/kmnist/t10k-images-idx3-ubyte.gz: HTTP 404`), e.message);
      return true;
    });
  });

  it('offline: an unreachable mirror is ERR_HVAE_DATA saying so, with the destination', async () => {
    const root = tmpDir();
    const port = await closedPort();
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root, baseUrl: `http://127.0.0.1:${port}` }), (e: unknown) => {
      assert.ok(e instanceof HVAEError && e.code === 'ERR_HVAE_DATA', String(e));
      assert.match(e.message, /no server could be reached:\n.*ECONNREFUSED/);
      assert.match(e.message, /offline/);
      assert.ok(e.message.includes(path.join(root, 'mnist')), e.message);
      return true;
    });
    assert.deepEqual(leftovers(root), []);
  });

  it('offline: the official URLs failing like a machine without internet', async () => {
    const tried: string[] = [];
    const noNetwork: FetchLike = async (url) => {
      tried.push(url);
      const cause = Object.assign(new Error(`getaddrinfo ENOTFOUND ${new URL(url).hostname}`), { code: 'ENOTFOUND' });
      throw new TypeError('fetch failed', { cause });
    };
    await assert.rejects(fetchDataset('FashionMNIST', { root: tmpDir(), fetchImpl: noNetwork }), (e: unknown) => {
      assert.ok(e instanceof HVAEError && e.code === 'ERR_HVAE_DATA');
      assert.match(e.message, /no server could be reached/);
      assert.match(e.message, /fashion-mnist\.s3-website\.eu-central-1\.amazonaws\.com\/train-images-idx3-ubyte\.gz: ENOTFOUND/);
      assert.match(e.message, /raw\.githubusercontent\.com\/zalandoresearch\/fashion-mnist\/master\/data\/fashion\/train-images-idx3-ubyte\.gz: ENOTFOUND/);
      assert.match(e.message, /offline/);
      assert.match(e.message, /--base-url/);
      return true;
    });
    assert.equal(tried.length, 2, 'each official URL of the first file once, then it stops');
  });

  it('an aborted download is ERR_HVAE_ABORTED', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root: tmpDir(), baseUrl: mirror.url, signal: ac.signal }), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_ABORTED');
  });

  it('downloadPlan lists the official URLs and checksums, or the mirror URLs', () => {
    const plan = downloadPlan('CIFAR10', { split: 'train' });
    assert.deepEqual(plan.map((p) => [p.file, p.urls[0]]), [['cifar10/cifar-10-binary.tar.gz', 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz']]);
    assert.deepEqual(plan[0].md5, ['c32a1d4ab5d03f1284b67883e8d87530']);
    const svhn = downloadPlan('SVHN');
    assert.deepEqual(svhn.map((p) => p.file), ['svhn/train_32x32.mat', 'svhn/test_32x32.mat']);
    const m = downloadPlan('MNIST', { split: 'test', baseUrl: 'http://mirror/x/' });
    assert.deepEqual(m.slice(0, 2).map((p) => p.urls), [['http://mirror/x/mnist/t10k-images-idx3-ubyte.gz'], ['http://mirror/x/mnist/t10k-labels-idx1-ubyte.gz']]);
    assert.deepEqual(m.slice(2).map((p) => [p.source, p.file]), [['idx', 'mnist/t10k-images-idx3-ubyte'], ['idx', 'mnist/t10k-labels-idx1-ubyte']]);
  });
});
