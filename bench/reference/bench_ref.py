"""Timing CLI for the PyTorch reference (hvae_ref.py): the baseline the project's benchmarks compare against.

Examples (Debian's interpreter, which has torch):
  /usr/bin/python3 bench/reference/bench_ref.py --preset fashionmnist --task score --flavour official \\
      --batch 500 --samples 1 --ks 0,1,2 --threads 2 --warmup 1 --repeats 5 --json
  /usr/bin/python3 bench/reference/bench_ref.py --task train --flavour optimized --batch 128 --json
  /usr/bin/python3 bench/reference/bench_ref.py --preset cifar10 --channels 32 --task score --batch 100 --json
  /usr/bin/python3 bench/reference/bench_ref.py --config cfg.json --save-weights w.safetensors --repeats 0

Tasks
  score  per-example L^S (S = --samples, importance-weighted), L>k and LLR>k = L^S - L>k for every k in --ks
         (S' = 1 for L>k). --flavour official: what the official code runs (hvae_ref.score_official, a full
         S+1 passes per k); --flavour optimized: hvae_ref.score_optimized (shared work, stacked rows, chunking).
  train  one training step per repeat: forward, loss (beta, free nats), backward, Adam step (hvae_ref.train_step).

Weights: --weights loads an official-named safetensors file; otherwise the model is built with torch.manual_seed(seed)
and data-dependent-initialized on a random binarized / dequantized batch of --init-batch images. --save-weights
writes the model's state under the official names (F32, `initialized` as U8) so the Node side can load the same
weights. Input: --input (safetensors: tensor `x`, or the first 4-D float tensor; or .npy), else a random batch.

Timing: --warmup untimed runs, then --repeats timed runs; images_per_s_median = batch / median(runs_s).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hvae_ref as H  # noqa: E402


def load_input(path: str, config: dict, batch: int) -> torch.Tensor:
    if path.endswith('.npy'):
        x = torch.from_numpy(np.load(path)).float()
    else:
        tensors, _ = H.load_safetensors(path)
        if 'x' in tensors:
            x = tensors['x']
        else:
            cands = [t for _, t in sorted(tensors.items()) if t.dim() == 4 and t.is_floating_point()]
            if not cands:
                raise SystemExit(f'{path}: no tensor `x` and no 4-D float tensor')
            x = cands[0]
        x = x.float()
    if tuple(x.shape[1:]) != tuple(config['inputShape']):
        raise SystemExit(f'input shape {tuple(x.shape[1:])} does not match the config {config["inputShape"]}')
    if x.shape[0] < batch:
        x = x.repeat((batch + x.shape[0] - 1) // x.shape[0], 1, 1, 1)
    return x[:batch].contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description='Time the PyTorch reference HVAE (score or train).')
    ap.add_argument('--preset', default='fashionmnist', choices=sorted(H.PRESETS))
    ap.add_argument('--config', help='a config JSON file (same schema as ts/config.ts); overrides --preset')
    ap.add_argument('--channels', type=int, help='set every stage\'s block channels (e.g. 32)')
    ap.add_argument('--weights', help='official-named .safetensors to load')
    ap.add_argument('--save-weights', help='write the model state (official names, F32) to this .safetensors')
    ap.add_argument('--input', help='input images: .safetensors (tensor x) or .npy, [N,C,H,W] float')
    ap.add_argument('--task', choices=['score', 'train'], default='score')
    ap.add_argument('--flavour', choices=['official', 'optimized'], default='official')
    ap.add_argument('--batch', type=int, default=500)
    ap.add_argument('--samples', type=int, default=1, help='S importance samples for L (score)')
    ap.add_argument('--ks', default='0,1,2', help='comma-separated k for L>k (score)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--init-batch', type=int, default=64, help='batch for the data-dependent init of a fresh model')
    ap.add_argument('--lr', type=float, default=3e-4)
    ap.add_argument('--beta', type=float, default=1.0, help='KL weight (train)')
    ap.add_argument('--free-nats', type=float, default=2.0, help='lambda of the REF free-nats rule (train)')
    ap.add_argument('--mem-budget-mb', type=float, default=1024.0, help='chunking budget (optimized score)')
    ap.add_argument('--blas', choices=['auto', 'system'], default='auto',
                    help='auto: re-run under OpenBLAS when one is found (dense layers only; reported as "blas")')
    ap.add_argument('--precision', choices=['float32', 'bfloat16'], default='float32',
                    help='bfloat16: score or train under torch.autocast(bfloat16) (optimized flavour only): what eager '
                         'PyTorch offers for reduced precision')
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    ap.add_argument('--tf32', action='store_true',
                    help='CUDA: allow TF32 in cuDNN convolutions and matmuls (PyTorch\'s default for cuDNN; off here, '
                         'as in hvae-native, so both sides compute float32)')
    ap.add_argument('--json', action='store_true', help='print one JSON object')
    args = ap.parse_args()

    if args.blas == 'auto':
        # OpenBLAS with the benchmark's thread count: it runs the dense layers and, in the official recipe, the
        # transposed convolutions (im2col + sgemm on CPU). bench/run.js sets OPENBLAS_NUM_THREADS the same way.
        H.reexec_with_openblas(num_threads=args.threads)
    torch.set_num_threads(args.threads)
    if args.config:
        with open(args.config) as f:
            config = H.resolve_config(json.load(f), channels=args.channels)
    else:
        config = H.resolve_config(preset=args.preset, channels=args.channels)
    preset_label = config.get('preset', 'custom') if not args.config else os.path.basename(args.config)
    if args.channels and not args.config:
        preset_label += f'@{args.channels}ch'
    ks = [int(k) for k in args.ks.split(',') if k.strip() != '']
    if any(k < 0 or k >= len(config['stages']) for k in ks):
        raise SystemExit(f'each k must be in 0..{len(config["stages"]) - 1}')

    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    t0 = time.perf_counter()
    model = H.build_model(config, args.weights, seed=args.seed, init_batch=args.init_batch)
    build_s = time.perf_counter() - t0
    if args.save_weights:
        H.save_safetensors(args.save_weights, model.official_state(),
                           {'config': json.dumps(config), 'source': 'bench/reference/bench_ref.py',
                            'init': f'loaded {args.weights}' if args.weights else
                            f'torch.manual_seed({args.seed}); data-dependent init on random_batch(seed={args.seed + 1})'})
    model = model.to(device)
    x = load_input(args.input, config, args.batch) if args.input else H.random_batch(config, args.batch, args.seed + 2)
    x = x.to(device)

    extra = {}
    if args.precision != 'float32' and args.flavour != 'optimized':
        raise SystemExit('--precision bfloat16 is for --flavour optimized')
    autocast = args.precision == 'bfloat16'
    extra['precision'] = args.precision
    if args.task == 'score':
        if args.flavour == 'official':
            def run():
                H.score_official(model, x, args.samples, ks)
            extra['full_passes_per_batch'] = len(ks) * (args.samples + 1)
        else:
            t1 = time.perf_counter()
            model.eval()
            model.fold(channels_last=True)     # once, outside the timed runs (§2.3 [REC])
            extra['fold_s'] = time.perf_counter() - t1
            groups = H.make_groups(model.n_layers, args.samples, ks)
            extra['stacked_groups'] = len(groups)
            extra['chunk'] = max(1, min(args.batch, int(args.mem_budget_mb * 2 ** 20 //
                                                        H._row_bytes(model, len(groups)))))

            def run():
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
                    H.score_optimized(model, x, args.samples, ks, mem_budget_mb=args.mem_budget_mb)
    else:
        model.unfold()
        opt = H.make_optimizer(model, args.flavour, lr=args.lr)

        def run():
            # bfloat16: mixed precision as eager PyTorch offers it (float32 weights and optimizer, autocast forward).
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
                H.train_step(model, opt, x, args.flavour, beta=args.beta, free_nats=args.free_nats)

    for _ in range(args.warmup):
        run()
    sync()
    runs = []
    for _ in range(args.repeats):
        t1 = time.perf_counter()
        run()
        sync()
        runs.append(time.perf_counter() - t1)
    med = statistics.median(runs) if runs else float('nan')
    result = {
        'task': args.task, 'flavour': args.flavour, 'preset': preset_label, 'batch': args.batch,
        'samples': args.samples if args.task == 'score' else 1, 'ks': ks if args.task == 'score' else [],
        'threads': args.threads, 'torch': torch.__version__, 'device': args.device,
        **({'tf32': args.tf32} if device.type == 'cuda' else {}),
        'images_per_s_median': args.batch / med if runs else None,
        'runs_s': [round(r, 6) for r in runs], 'median_s': med if runs else None,
        'warmup': args.warmup, 'repeats': args.repeats,
        'params': sum(p.numel() for p in model.parameters()),
        'weights': args.weights or f'random data-dependent init (seed {args.seed})',
        'build_s': round(build_s, 3), 'blas': os.path.basename(H.blas_library()),
        **extra,
    }
    if args.task == 'train':
        result.update({'beta': args.beta, 'free_nats': args.free_nats, 'lr': args.lr})
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f'{k:>22}: {v}')


if __name__ == '__main__':
    main()
