"""Checks hvae_ref.py against the golden fixtures of the official code (../shared/fixtures, see its README).

For both scoring flavours (official, optimized) and both fixture models (grey, natural) it compares, per example,
log p(x|z), every KL, the ELBO, L>1 and L>2 with their logliks and KLs, LLR>1/2, the all-modes pass, the debug
intermediates, and for grey the importance-weighted ELBO with S = 8 and the IW LLRs, all with the fixture's injected
noise. Tolerance (fixtures README §7): |delta| <= 1e-3 + 1e-5 * |value|. The optimized flavour consumes the very
same eps arrays, mapped onto its stacked rows (group, layer) -> slice of the fixture array; the IW check runs with a
small forced chunk size so that chunking is exercised too. It also checks which eps each pass consumed, in which
order, against `eps_consumption_order`.

The grey training step (README §5) is checked for both training flavours: loss before the step per example,
per-parameter gradient L2 norms (1e-4 relative) and sums (1e-4 relative + 1e-2 absolute), the dead
q_projection's missing gradients, and the loss after one fresh Adam step (lr 3e-4) within 1e-5 relative.

Usage:  /usr/bin/python3 bench/reference/check_fixtures.py [--fixtures DIR] [--threads N]
Prints a table of max |delta| per quantity and exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hvae_ref as H  # noqa: E402

ATOL, RTOL = 1e-3, 1e-5          # per-example terms (fixtures README §7)


class Table:
    """Collects max |delta| and the worst delta/tolerance ratio per (quantity, flavour)."""

    def __init__(self):
        self.rows: "OrderedDict[str, dict]" = OrderedDict()
        self.failures = []

    def add(self, quantity: str, flavour: str, got, ref, atol=ATOL, rtol=RTOL, label=None):
        got = torch.as_tensor(got, dtype=torch.float64)
        ref = torch.as_tensor(ref, dtype=torch.float64)
        if got.shape != ref.shape:
            self.failures.append(f'{label or quantity} [{flavour}]: shape {tuple(got.shape)} != {tuple(ref.shape)}')
            delta, ratio = float('inf'), float('inf')
        else:
            d = (got - ref).abs()
            tol = atol + rtol * ref.abs()
            delta = d.max().item() if d.numel() else 0.0
            ratio = (d / tol).max().item() if d.numel() else 0.0
            if not torch.isfinite(got).all() or ratio > 1.0:
                self.failures.append(f'{label or quantity} [{flavour}]: max|delta| {delta:.3g} (delta/tol {ratio:.3g})')
        row = self.rows.setdefault(quantity, {'tol': f'{atol:g}+{rtol:g}|v|' if atol else f'{rtol:g} rel'})
        prev = row.get(flavour, (0.0, 0.0))
        row[flavour] = (max(prev[0], delta), max(prev[1], ratio))

    def flag(self, quantity: str, flavour: str, ok: bool, msg: str):
        row = self.rows.setdefault(quantity, {'tol': 'exact'})
        row[flavour] = (0.0 if ok else float('inf'), 0.0 if ok else float('inf'))
        if not ok:
            self.failures.append(f'{quantity} [{flavour}]: {msg}')

    def print(self):
        w = max(len(q) for q in self.rows) + 2
        print(f'{"quantity":<{w}}{"official max|d|":>17}{"optimized max|d|":>18}{"worst d/tol":>13}  tolerance')
        print('-' * (w + 17 + 18 + 13 + 22))
        for q, row in self.rows.items():
            cells, worst = [], 0.0
            for fl in ('official', 'optimized'):
                if fl in row:
                    cells.append(f'{row[fl][0]:.3e}')
                    worst = max(worst, row[fl][1])
                else:
                    cells.append('-')
            print(f'{q:<{w}}{cells[0]:>17}{cells[1]:>18}{worst:>13.3f}  {row["tol"]}')


def load_fixture(root: str, name: str):
    d = os.path.join(root, name)
    weights, _ = H.load_safetensors(os.path.join(d, 'weights.safetensors'))
    inputs, _ = H.load_safetensors(os.path.join(d, 'inputs.safetensors'))
    noise, _ = H.load_safetensors(os.path.join(d, 'noise.safetensors'))
    outputs, _ = H.load_safetensors(os.path.join(d, 'outputs.safetensors'))
    with open(os.path.join(d, 'outputs.json')) as f:
        meta = json.load(f)
    return weights, inputs, noise, outputs, meta


def make_model(config, weights):
    m = H.HVAE(config)
    m.load_official(weights)
    return m


class EpsMap:
    """Maps (role, idx, layer, rows) onto the fixture's noise arrays and logs the consumption order.
    iw=False: ELBO sample 0 -> eps.elbo.z*, L>k -> eps.k{k}.z*.  iw=True: ELBO sample s -> eps.iw.z*[s]."""

    def __init__(self, noise, iw=False):
        self.noise, self.iw, self.log = noise, iw, OrderedDict()

    def __call__(self, role, idx, layer, lo, hi):
        if role == 'elbo':
            if self.iw:
                t = self.noise[f'eps.iw.z{layer + 1}'][idx]
            else:
                assert idx == 0, 'the non-IW fixture has one ELBO sample'
                t = self.noise[f'eps.elbo.z{layer + 1}']
            key = 'elbo' if not self.iw else f'iw{idx}'
        elif role == 'lk':
            t = self.noise[f'eps.k{idx}.z{layer + 1}']
            key = f'k{idx}'
        else:
            raise AssertionError(f'pass {role} must not consume eps (layer z{layer + 1})')
        entries = self.log.setdefault(key, [])
        if lo == 0:   # record each (pass, layer) once, at its first chunk
            entries.append(f'z{layer + 1}')
        return t[lo:hi]


def check_consumption(tab, flavour, emap: EpsMap, meta, modes_checked=True):
    expected = {k: [e[0] for e in v] for k, v in meta['eps_consumption_order'].items()}
    got = {k: v for k, v in emap.log.items()}
    ok = True
    for key in ('elbo', 'k1', 'k2'):
        seq = got.get(key, [])
        n_rep = max(1, len(seq) // max(1, len(expected[key])))   # official recomputes the ELBO once per k
        if seq != expected[key] * n_rep:
            ok = False
    if modes_checked and expected.get('modes'):
        ok = False
    tab.flag('eps consumption order', flavour, ok, f'got {got}, expected {expected}')


def per_pass_checks(tab, flavour, setname, outputs, elbo_pass, k_passes, modes_pass, llr, lk):
    """elbo_pass / modes_pass: dict(loglik, kl[list]); k_passes: {k: dict(loglik, kl)}; llr/lk: {k: [B]}."""
    p = setname
    tab.add('elbo.loglik', flavour, elbo_pass['loglik'], outputs[f'{p}.elbo.loglik'])
    for l in range(3):
        tab.add(f'elbo.kl.z{l + 1}', flavour, elbo_pass['kl'][l], outputs[f'{p}.elbo.kl.z{l + 1}'])
    tab.add('elbo.elbo', flavour, elbo_pass['elbo'], outputs[f'{p}.elbo.elbo'])
    for k in (1, 2):
        kp = k_passes[k]
        tab.add(f'k{k}.loglik', flavour, kp['loglik'], outputs[f'{p}.k{k}.loglik'])
        for l in range(3):
            if l < k:
                tab.flag(f'k{k}: no KL for skipped z{l + 1}', flavour, kp['kl'][l] is None, 'KL produced')
            else:
                tab.add(f'k{k}.kl.z{l + 1}', flavour, kp['kl'][l], outputs[f'{p}.k{k}.kl.z{l + 1}'])
        tab.add(f'k{k}.Lk', flavour, lk[k], outputs[f'{p}.k{k}.Lk'])
        tab.add(f'llr{k}', flavour, llr[k], outputs[f'{p}.llr{k}'])
    tab.add('modes.loglik', flavour, modes_pass['loglik'], outputs[f'{p}.modes.loglik'])
    for l in range(3):
        tab.add(f'modes.kl.z{l + 1}', flavour, modes_pass['kl'][l], outputs[f'{p}.modes.kl.z{l + 1}'])
    tab.add('modes.elbo', flavour, modes_pass['elbo'], outputs[f'{p}.modes.elbo'])


def debug_checks(tab, setname, outputs, o, rows, lik_name):
    """Intermediates of the official-flavour ELBO pass (q/p parameters, z, likelihood parameters)."""
    for l in range(3):
        for key, got in (('q_mean', o['q_mu'][l]), ('q_std', o['q_sigma'][l]), ('z', o['z_q'][l]),
                         ('p_mean', o['p_mu'][l]), ('p_std', o['p_sigma'][l])):
            tab.add(f'debug.{key}.z*', 'official', got[:rows], outputs[f'debug.{setname}.elbo.{key}.z{l + 1}'],
                    label=f'debug.{setname}.{key}.z{l + 1}')
    tab.add(f'debug.{lik_name}', 'official', o['lik_params'][:rows], outputs[f'debug.{setname}.elbo.{lik_name}'])


def check_scoring(tab, root, fixture, config, sets, iw, debug):
    weights, inputs, noise, outputs, meta = load_fixture(root, fixture)
    model = make_model(config, weights)
    n = model.n_layers
    for setname in sets:
        x = inputs[f'x_{setname}']
        # ------------------------------------------------------------------ official flavour
        emap = EpsMap(noise)
        r = H.score_official(model, x, 1, [1, 2], eps_fn=emap, keep_passes=True)
        elbo_pass = r[1]['passes'][0]
        k_passes = {k: r[k]['passes'][1] for k in (1, 2)}
        tab.add('elbo.elbo (recomputed per k)', 'official', r[2]['passes'][0]['elbo'], outputs[f'{setname}.elbo.elbo'])
        with torch.no_grad():
            modes_pass = model(x, [True] * n, [False] * n, None, sample_likelihood=True, dead_projection=True)
        per_pass_checks(tab, 'official', setname, outputs, elbo_pass, k_passes, modes_pass,
                        {k: r[k]['llr'] for k in (1, 2)}, {k: r[k]['Lk'] for k in (1, 2)})
        check_consumption(tab, 'official', emap, meta)
        if debug and setname in debug:
            rows, lik_name = debug[setname]
            debug_checks(tab, setname, outputs, elbo_pass, rows, lik_name)
        if iw:
            r = H.score_official(model, x, 8, [1, 2], eps_fn=EpsMap(noise, iw=True))
            tab.add('iw.elbo_samples (S=8)', 'official', r[1]['elbo_samples'], outputs[f'{setname}.iw.elbo_samples'])
            tab.add('iw.elbo (S=8)', 'official', r[1]['elbo'], outputs[f'{setname}.iw.elbo'])
            for k in (1, 2):
                tab.add(f'iw.llr{k} (S=8, S\'=1)', 'official', r[k]['llr'], outputs[f'{setname}.iw.llr{k}'])
        # ------------------------------------------------------------------ optimized flavour
        model.unfold()
        emap = EpsMap(noise)
        r = H.score_optimized(model, x, 1, [0, 1, 2], eps_fn=emap, modes=True)
        go = {(g['group'].role, g['group'].idx): g for g in r['group_out']}
        per_pass_checks(tab, 'optimized', setname, outputs, go[('elbo', 0)], {k: go[('lk', k)] for k in (1, 2)},
                        go[('modes', 0)], {k: r[k]['llr'] for k in (1, 2)}, {k: r[k]['Lk'] for k in (1, 2)})
        tab.add('llr0 = 0 (S=1, shared sample)', 'optimized', r[0]['llr'], torch.zeros(x.shape[0]))
        check_consumption(tab, 'optimized', emap, meta)
        if iw:
            # forced small chunks (3 chunks of 24/24/16 examples) to exercise the chunked path
            r = H.score_optimized(model, x, 8, [1, 2], eps_fn=EpsMap(noise, iw=True), chunk=24)
            tab.add('iw.elbo_samples (S=8)', 'optimized', r[1]['elbo_samples'], outputs[f'{setname}.iw.elbo_samples'])
            tab.add('iw.elbo (S=8)', 'optimized', r[1]['elbo'], outputs[f'{setname}.iw.elbo'])
            for k in (1, 2):
                tab.add(f'iw.llr{k} (S=8, S\'=1)', 'optimized', r[k]['llr'], outputs[f'{setname}.iw.llr{k}'])
        model.unfold()


def check_train(tab, root, config):
    weights, inputs, noise, _, _ = load_fixture(root, 'grey')
    with open(os.path.join(root, 'grey', 'train_step.json')) as f:
        ts = json.load(f)
    st = ts['settings']
    beta, free_nats = float(st['beta']), float(st['free_nats'])
    x = inputs['x_train']
    eps = [noise['eps.train.z1'], noise['eps.train.z2'], noise['eps.train.z3']]
    for flavour in ('official', 'optimized'):
        model = make_model(config, weights)
        opt = H.make_optimizer(model, flavour, lr=3e-4)
        grads = {}

        def record(m):
            for name, p in m.named_parameters():
                grads[name] = None if p.grad is None else p.grad.detach().double().clone()

        loss, elbo = H.train_step(model, opt, x, flavour, beta, free_nats, eps, on_grads=record)
        tab.add('train: loss before (per example)', flavour, loss, ts['loss_before_per_example'])
        tab.add('train: ELBO before (per example)', flavour, elbo, ts['elbo_before_per_example'])
        l2_got, l2_ref, s_got, s_ref, none_ok = [], [], [], [], True
        if set(grads) != set(ts['grads']):
            none_ok = False
        for name, info in ts['grads'].items():
            g = grads.get(name)
            if info['grad_is_none']:
                none_ok &= g is None
                continue
            if g is None:
                none_ok = False
                continue
            l2_got.append(g.norm().item()), l2_ref.append(info['l2'])
            s_got.append(g.sum().item()), s_ref.append(info['sum'])
        tab.flag('train: parameter set / dead grads None', flavour, none_ok, 'gradient presence differs')
        tab.add('train: grad L2 norms (147 params)', flavour, l2_got, l2_ref, atol=0.0, rtol=1e-4)
        tab.add('train: grad sums (147 params)', flavour, s_got, s_ref, atol=1e-2, rtol=1e-4)
        with torch.no_grad():
            out = model(x, eps=eps)
            loss_after, _ = H.training_loss(out, beta, free_nats)
        tab.add('train: loss after Adam step (per ex.)', flavour, loss_after, ts['loss_after_per_example'],
                atol=0.0, rtol=1e-5)
        tab.add('train: loss after Adam step (mean)', flavour, loss_after.mean(), ts['loss_after_mean'],
                atol=0.0, rtol=1e-5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument('--fixtures', default=os.path.normpath(os.path.join(here, '..', '..', '..', 'shared', 'fixtures')))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--blas', choices=['auto', 'system'], default='auto',
                    help='auto (default): re-run under OpenBLAS with its Haswell kernels (the fixtures\' BLAS) when '
                         'one is found; system: keep the BLAS this process loaded')
    ap.add_argument('--fetch-openblas', action='store_true',
                    help='first extract Debian\'s libopenblas0-pthread into ~/.cache/hvae-ref/openblas '
                         '(apt-get download + dpkg -x; nothing is installed system-wide)')
    args = ap.parse_args()
    if args.fetch_openblas and H.find_openblas_dir() is None:
        print('openblas extracted to', H.fetch_openblas())
    if args.blas == 'auto':
        H.reexec_with_openblas(coretype='Haswell', num_threads=2)
    blas = H.blas_library()
    exact_blas = 'openblas' in blas and os.environ.get('OPENBLAS_CORETYPE') == 'Haswell'
    print(f'BLAS: {blas}' + (f' (OPENBLAS_CORETYPE={os.environ["OPENBLAS_CORETYPE"]})'
                            if os.environ.get('OPENBLAS_CORETYPE') else ''))
    if not exact_blas:
        print('NOTE: not the fixtures\' BLAS (OpenBLAS, Haswell kernels). Scoring checks still hold, but the training-'
              'step\n      gradients are ill-conditioned and need it: rerun with --fetch-openblas (see README.md).')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)   # only the unused likelihood samples draw from the global RNG

    grey_cfg = H.resolve_config(preset='fashionmnist')
    nat_cfg = H.resolve_config(preset='cifar10', channels=32)
    tables = []
    for title, fn in (
        ('grey (fashionmnist preset), x_fashion + x_mnist, 64 examples each',
         lambda t: check_scoring(t, args.fixtures, 'grey', grey_cfg, ['fashion', 'mnist'], iw=True,
                                 debug={'fashion': (64, 'logits')})),
        ('natural (cifar10 preset, 32 channels), x_cifar, 16 examples',
         lambda t: check_scoring(t, args.fixtures, 'natural', nat_cfg, ['cifar'], iw=False,
                                 debug={'cifar': (4, 'dlm_params')})),
        ('grey training step (beta 0.5, free nats 2, fresh Adam lr 3e-4)',
         lambda t: check_train(t, args.fixtures, grey_cfg)),
    ):
        t = Table()
        fn(t)
        print(f'\n== {title}')
        t.print()
        tables.append(t)
    failures = [f for t in tables for f in t.failures]
    print()
    if failures:
        print(f'FAIL: {len(failures)} check(s) out of tolerance')
        for f in failures[:50]:
            print('  ' + f)
        sys.exit(1)
    print(f'OK: all checks within tolerance (torch {torch.__version__}, {args.threads} threads)')


if __name__ == '__main__':
    main()
