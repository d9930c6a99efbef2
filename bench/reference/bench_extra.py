"""Extra reference tasks for bench/run.js, beside bench_ref.py (which times scoring and training steps).

  convrate  the device's convolution rate on the model's dominant convolution (64 -> 64, 5x5, 28x28, batch 128),
            through the same LibTorch kernels hvae-native uses: {"gflops": ...}
  e2e       benchmark (c) for the reference: read MNIST test from its IDX .gz file, binarize, score L^1 and L>k for
            k = 0, 1, 2 with the optimized flavour in batches of --batch (250), write one JSON line per image; one
            untimed warm-up pass, then --repeats timed ones,
            {"images_per_s_median", "runs_s", "peak_rss_mb"}.
  precision-error  what torch.autocast(bfloat16) changes in the scores: the first --limit FashionMNIST test images
            (--input, IDX .gz), binarized with a seeded generator, scored (optimized flavour, S = 1, k = 0, 1, 2)
            in float32 and under autocast with the same torch.manual_seed; per score the median / p99 / max
            absolute difference in nats, and images/s of each.

  /usr/bin/python3 bench/reference/bench_extra.py --task convrate --threads 2 --json
  /usr/bin/python3 bench/reference/bench_extra.py --task e2e --weights W --input t10k-images-idx3-ubyte.gz \\
      --limit 10000 --output /tmp/ref.jsonl --repeats 5 --batch 250 --threads 2 --json
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hvae_ref as H  # noqa: E402


def conv_rate(device: str) -> float:
    x = torch.randn(128, 64, 28, 28, device=device)
    w = torch.randn(64, 64, 5, 5, device=device)
    flops = 2 * 128 * 28 * 28 * 64 * 64 * 25
    with torch.inference_mode():
        for _ in range(2):
            F.conv2d(x, w, padding=2)
        times = []
        for _ in range(5):
            if device != 'cpu':
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            F.conv2d(x, w, padding=2)
            if device != 'cpu':
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return flops / statistics.median(times) / 1e9


def read_idx_images(path: str, limit: int) -> np.ndarray:
    with gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb') as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(3))
    arr = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, h, w)
    return arr[:limit]


def e2e_once(model: H.HVAE, path: str, limit: int, output: str, device: str, batch: int = 250) -> float:
    t0 = time.perf_counter()
    images = read_idx_images(path, limit)
    with open(output, 'w') as out:
        for lo in range(0, len(images), batch):
            u8 = torch.from_numpy(images[lo:lo + batch].copy()).to(device)
            x = torch.bernoulli(u8.float() / 255.0)
            r = H.score_optimized(model, x, 1, [0, 1, 2])
            elbo, l1, l2 = r[1]['elbo'].cpu(), r[1]['Lk'].cpu(), r[2]['Lk'].cpu()
            lines = []
            for i in range(x.shape[0]):
                lines.append(json.dumps({'index': lo + i, 'elbo': float(elbo[i]), 'L>1': float(l1[i]), 'L>2': float(l2[i]),
                                         'LLR>1': float(elbo[i] - l1[i]), 'LLR>2': float(elbo[i] - l2[i])}))
            out.write('\n'.join(lines) + '\n')
    return time.perf_counter() - t0


def peak_rss_mb() -> float:
    """VmHWM of this process: getrusage's ru_maxrss survives execve and would include the parent's memory."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def precision_error(weights: str, images: str, limit: int) -> dict:
    model = H.build_model(H.resolve_config(preset='fashionmnist'), weights)
    model.eval()
    model.fold(channels_last=True)
    with gzip.open(images, 'rb') as f:
        raw = f.read()[16:16 + limit * 784]
    x = torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))

    def run(autocast: bool):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            out = H.score_optimized(model, x, 1, [0, 1, 2])
        return out, time.perf_counter() - t0

    run(False)  # warm-up
    (a, ta), (b, tb) = run(False), run(True)

    def stats(u, v):
        d = (v.float() - u.float()).abs()
        return {'median': d.median().item(), 'p99': d.quantile(0.99).item(), 'max': d.max().item()}
    return {'task': 'precision-error', 'images': int(x.shape[0]), 'torch': torch.__version__,
            'elbo': stats(a[0]['elbo'], b[0]['elbo']), 'mean_elbo': a[0]['elbo'].mean().item(),
            'bound_above_k': {k: stats(a[k]['Lk'], b[k]['Lk']) for k in (1, 2)},
            'llr': {k: stats(a[k]['llr'], b[k]['llr']) for k in (1, 2)},
            'images_per_s': {'float32': x.shape[0] / ta, 'bfloat16': x.shape[0] / tb}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--task', choices=['convrate', 'e2e', 'precision-error'], required=True)
    ap.add_argument('--weights')
    ap.add_argument('--input')
    ap.add_argument('--output', default='/tmp/hvae-ref-e2e.jsonl')
    ap.add_argument('--limit', type=int, default=10000)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--batch', type=int, default=250, help='e2e: images per scoring call')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--flavour', default='optimized')
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    if a.task == 'e2e' and a.device == 'cpu':
        # The same BLAS as the other reference runs (bench_ref.py --blas auto): OpenBLAS with the benchmark's threads.
        H.reexec_with_openblas(num_threads=a.threads)
    torch.set_num_threads(a.threads)
    if a.device != 'cpu':
        # float32 convolutions, as both benchmarked sides run them (PyTorch's cuDNN default allows TF32, which would
        # overstate the rate the "% of conv rate" column divides by).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if a.task == 'convrate':
        res = {'task': 'convrate', 'device': a.device, 'threads': a.threads, 'gflops': conv_rate(a.device)}
    elif a.task == 'precision-error':
        res = precision_error(a.weights, a.input, a.limit)
    else:
        model = H.build_model(H.resolve_config(preset='fashionmnist'), a.weights).to(a.device)
        e2e_once(model, a.input, a.limit, a.output, a.device, a.batch)   # warm-up, as on our side (bench/e2e.js)
        runs = [e2e_once(model, a.input, a.limit, a.output, a.device, a.batch) for _ in range(a.repeats)]
        n = min(a.limit, 10000)
        res = {'task': 'e2e', 'flavour': 'optimized', 'images': n, 'runs_s': runs,
               'images_per_s_median': n / statistics.median(runs),
               'peak_rss_mb': peak_rss_mb(), 'torch': torch.__version__}
    print(json.dumps(res))


if __name__ == '__main__':
    main()
