"""PyTorch reference implementation of the hierarchical VAE of Havtorn et al. (ICML 2021), written from
../shared/ALGORITHM.md (the numerical-parity contract for hvae-native). Section marks like "§2.5" refer to that
document. Run with Debian's interpreter (/usr/bin/python3, torch 1.13 CPU).

Contents
  * a minimal safetensors reader/writer (F32 and U8 are all the fixtures need)
  * the model config (same JSON schema as ts/config.ts) and the two presets
  * the model as nn.Modules whose parameter names equal the official state_dict names (§2.12)
  * one forward pass with per-layer `use_mode` / `decode_from_p` flags and injectable noise (§2.8, §4.1, §4.2)
  * the training loss (§3.2) and the log-mean-exp (§3.4)
  * the two scoring flavours used by the benchmarks:
      - score_official:  what users of the official code run (§4.3), inefficiencies included (§8)
      - score_optimized: the best eager PyTorch can do (§4.4): shared work, stacked rows, folded weights,
                         transposed convs as conv + pixel_shuffle (polyphase_kernel), channels-last
  * train_step for both flavours, and helpers to run under the fixtures' BLAS (see "BLAS selection")
See README.md for how the flavours differ and how check_fixtures.py verifies them.

Shapes are NCHW, float32. B is the batch size, L the number of stages (latent layers), layers are indexed
0..L-1 from the bottom (z1) to the top (zL) in code, 1..L in comments that quote ALGORITHM.md.
"""
from __future__ import annotations

import copy
import glob
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN2 = math.log(2.0)
_LOG_SQRT_2PI = math.log(math.sqrt(2.0 * math.pi))  # the constant torch.distributions.Normal.log_prob uses

# ---------------------------------------------------------------------------------------------------------------------
# safetensors (8-byte little-endian header length, JSON header, raw little-endian C-contiguous data)
# ---------------------------------------------------------------------------------------------------------------------

_ST_DTYPES = {
    'F32': (np.float32, torch.float32),
    'F64': (np.float64, torch.float64),
    'U8': (np.uint8, torch.uint8),
    'BOOL': (np.bool_, torch.bool),
    'I64': (np.int64, torch.int64),
}
_TORCH_TO_ST = {v[1]: k for k, v in _ST_DTYPES.items()}


def load_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Reads a .safetensors file. Returns ({name: tensor}, metadata)."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', {}) or {}
    base = 8 + n
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        np_dt, _ = _ST_DTYPES[info['dtype']]
        b, e = info['data_offsets']
        arr = np.frombuffer(raw, dtype=np.dtype(np_dt).newbyteorder('<'), count=(e - b) // np.dtype(np_dt).itemsize,
                            offset=base + b)
        out[name] = torch.from_numpy(arr.astype(np_dt, copy=True).reshape(info['shape']))
    return out, meta


def save_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes tensors (sorted by name, no gaps) with a space-padded JSON header (multiple of 8 bytes)."""
    header: Dict[str, object] = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_ST:
            raise TypeError(f'{name}: unsupported dtype {t.dtype}')
        data = t.numpy().astype(t.numpy().dtype.newbyteorder('<'), copy=False).tobytes()
        header[name] = {'dtype': _TORCH_TO_ST[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hb += b' ' * ((-len(hb)) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for data in blobs:
            f.write(data)


# ---------------------------------------------------------------------------------------------------------------------
# BLAS selection
#
# Dense layers (addmm) and their backward go through the BLAS that Debian's torch links as libblas.so.3. Convolutions
# go through oneDNN and do not. The fixtures were produced with Debian's OpenBLAS 0.3.21 (pthread) running its Haswell
# kernels: with that library and OPENBLAS_CORETYPE=Haswell this implementation reproduces the fixture forward pass bit
# for bit. Debian's default netlib reference BLAS (libblas3) sums sgemm sequentially. It moves the forward pass by
# about 2e-7 relative, well inside the tolerance. The training-step gradients are ill-conditioned, though: a 1e-6
# relative perturbation of the weights changes per-parameter gradient norms by up to 1.7e-3. With the reference BLAS
# they miss the fixture's 1e-4 tolerance (1.1e-3 at worst, in the top encoder). check_fixtures.py therefore re-executes
# itself with OpenBLAS where it can find one; bench_ref.py does the same, for speed only (it reports the library).
# ---------------------------------------------------------------------------------------------------------------------

OPENBLAS_CACHE = os.path.expanduser('~/.cache/hvae-ref/openblas')
_OPENBLAS_SUBDIR = 'usr/lib/x86_64-linux-gnu/openblas-pthread'


def blas_library() -> str:
    """File name of the BLAS library loaded in this process (forces torch to load it first)."""
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and 'blas' in os.path.basename(parts[-1]).lower():
                    return parts[-1]
    except OSError:
        pass
    return 'unknown'


def find_openblas_dir() -> Optional[str]:
    """A directory holding OpenBLAS's libblas.so.3: $HVAE_REF_OPENBLAS_DIR, the Debian package's folder, or the
    private extraction made by fetch_openblas()."""
    for d in (os.environ.get('HVAE_REF_OPENBLAS_DIR'), '/usr/lib/x86_64-linux-gnu/openblas-pthread',
              os.path.join(OPENBLAS_CACHE, _OPENBLAS_SUBDIR)):
        if d and os.path.exists(os.path.join(d, 'libblas.so.3')):
            return d
    return None


def fetch_openblas() -> str:
    """Extracts Debian's libopenblas0-pthread into ~/.cache/hvae-ref/openblas (apt-get download + dpkg -x). Nothing
    is installed system-wide and the libblas.so.3 alternative is left alone."""
    os.makedirs(OPENBLAS_CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)   # apt-get download drops to the _apt user when it can write there
        subprocess.run(['apt-get', 'download', 'libopenblas0-pthread'], cwd=tmp, check=True)
        debs = glob.glob(os.path.join(tmp, '*.deb'))
        subprocess.run(['dpkg', '-x', debs[0], OPENBLAS_CACHE], check=True)
    return os.path.join(OPENBLAS_CACHE, _OPENBLAS_SUBDIR)


def randn_f32(t: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like `t` (same memory format), always drawn in float32 and then cast to t's dtype.
    torch.randn_like on a bfloat16 tensor (under torch.autocast) fills it with a different algorithm, so the same seed
    would give unrelated draws and a float32-vs-autocast comparison would measure sampling noise, not precision."""
    e = torch.randn_like(t, dtype=torch.float32)
    return e if t.dtype == torch.float32 else e.to(t.dtype)


def reexec_with_openblas(coretype: Optional[str] = None, num_threads: Optional[int] = None) -> None:
    """Re-executes the current script with OpenBLAS first on LD_LIBRARY_PATH (and OPENBLAS_CORETYPE /
    OPENBLAS_NUM_THREADS if given and not already set), unless it already runs that way or no OpenBLAS is available.
    Returns only when no re-exec happens. Note: OpenBLAS's sgemm rounding depends on its thread count (1 thread does
    not reproduce the fixtures; 2, the fixture machines' core count, does)."""
    if os.environ.get('HVAE_REF_BLAS_REEXEC'):
        return
    lib = blas_library()
    if 'openblas' in lib and (coretype is None or os.environ.get('OPENBLAS_CORETYPE') == coretype):
        return
    d = find_openblas_dir()
    if d is None:
        # Not installed and not extracted yet: extract Debian's package privately (as check_fixtures.py
        # --fetch-openblas does). Without it the reference would silently run on the Netlib BLAS, 2.5-3x slower.
        try:
            d = fetch_openblas()
        except (OSError, subprocess.CalledProcessError, IndexError) as e:
            print(f'hvae_ref: no OpenBLAS ({e}); the reference runs on the system BLAS {blas_library()}', file=sys.stderr)
            return
    env = dict(os.environ)
    env['LD_LIBRARY_PATH'] = d + (':' + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
    if coretype:
        env['OPENBLAS_CORETYPE'] = coretype
    if num_threads and not env.get('OPENBLAS_NUM_THREADS'):
        env['OPENBLAS_NUM_THREADS'] = str(num_threads)
    env['HVAE_REF_BLAS_REEXEC'] = '1'
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


# ---------------------------------------------------------------------------------------------------------------------
# Config (the JSON schema shared with ts/config.ts)
# ---------------------------------------------------------------------------------------------------------------------

PRESETS = {
    # §2.9
    'fashionmnist': {
        'inputShape': [1, 28, 28],
        'stages': [
            {'channels': 64, 'kernels': [5, 5, 5], 'strides': [1, 1, 2], 'latent': {'type': 'conv', 'size': 8}},
            {'channels': 64, 'kernels': [3, 3, 3], 'strides': [1, 1, 2], 'latent': {'type': 'dense', 'size': 16}},
            {'channels': 64, 'kernels': [3, 3, 3], 'strides': [1, 1, 1], 'latent': {'type': 'dense', 'size': 8}},
        ],
        'likelihood': 'bernoulli', 'mixtureComponents': 10, 'skipConnections': 'reference',
    },
    # §2.10 (HEAD config)
    'cifar10': {
        'inputShape': [3, 32, 32],
        'stages': [
            {'channels': 256, 'kernels': [5, 5, 5], 'strides': [1, 1, 2], 'latent': {'type': 'conv', 'size': 128}},
            {'channels': 256, 'kernels': [3, 3, 3], 'strides': [1, 1, 2], 'latent': {'type': 'conv', 'size': 64}},
            {'channels': 256, 'kernels': [3, 3, 3], 'strides': [1, 1, 2], 'latent': {'type': 'dense', 'size': 32}},
        ],
        'likelihood': 'dlm', 'mixtureComponents': 10, 'skipConnections': 'reference',
    },
}


def resolve_config(cfg: Optional[dict] = None, preset: Optional[str] = None, channels: Optional[int] = None) -> dict:
    """Builds a complete config: a preset (by name or `cfg['preset']`) overridden by the fields of `cfg`.
    `channels` (or `cfg['channels']`) sets every stage's block channels, e.g. 32 for the natural fixture model."""
    cfg = dict(cfg or {})
    name = cfg.pop('preset', None) or preset
    if name is None and 'stages' not in cfg:
        name = 'fashionmnist'
    base = copy.deepcopy(PRESETS[name]) if name else {
        'inputShape': [1, 28, 28], 'stages': [], 'likelihood': 'bernoulli', 'mixtureComponents': 10,
        'skipConnections': 'reference'}
    ch = cfg.pop('channels', None) if channels is None else channels
    cfg.pop('channels', None)
    for k, v in cfg.items():
        if k not in ('inputShape', 'stages', 'likelihood', 'mixtureComponents', 'skipConnections'):
            raise ValueError(f'unknown config key {k!r}')
        base[k] = copy.deepcopy(v)
    if ch is not None:
        for s in base['stages']:
            s['channels'] = int(ch)
    if name:
        base['preset'] = name
    if base['likelihood'] not in ('bernoulli', 'dlm'):
        raise ValueError('likelihood must be bernoulli or dlm')
    if base['likelihood'] == 'dlm' and base['inputShape'][0] != 3:
        raise ValueError('the dlm likelihood models 3 colour channels')
    if base['skipConnections'] not in ('reference', 'paper'):
        raise ValueError('skipConnections must be reference or paper')
    for s in base['stages']:
        if len(s['kernels']) != len(s['strides']) or any(k % 2 != 1 for k in s['kernels']):
            raise ValueError('each stage needs odd kernels and one stride per kernel')
    return base


# ---------------------------------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------------------------------

def same_pad(n: int, k: int, s: int) -> Tuple[int, int]:
    """TF "SAME" padding for one spatial dim (§2.2): out = ceil(n/s), P = max(0, (out-1)s + k - n),
    returned as (top/left, bottom/right) = (floor(P/2), ceil(P/2))."""
    out = -(-n // s)
    p = max(0, (out - 1) * s + k - n)
    return p // 2, p - p // 2


class _WNParams(nn.Module):
    """Holds weight_v, weight_g and bias under the names torch.nn.utils.weight_norm gives them (§2.3, §2.12)."""

    def __init__(self, v_shape, g_shape, out: int):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(g_shape))
        self.weight_v = nn.Parameter(torch.empty(v_shape))
        self.bias = nn.Parameter(torch.zeros(out))
        nn.init.kaiming_normal_(self.weight_v, mode='fan_in', nonlinearity='relu')


class NormedLayer(nn.Module):
    """A weight-normalized Conv2d ('conv'), ConvTranspose2d ('convT') or Linear ('linear').

    * W = g * v / ||v||, norm over every axis except the output-unit axis (dim 0; dim 1 for ConvTranspose2d whose
      v is (in,out,k,k) and g is (1,out,1,1)) (§2.3). By default W is recomputed on every call, as the official
      pre-forward hook does; `fold()` caches it (the optimized flavour).
    * Conv: TF-same padding: symmetric floor(P/2) inside the conv plus one extra zero row/col on the bottom/right
      when P is odd (§2.2). ConvTranspose: padding 0, output (n-1)s+k, then crop floor(P/2) top/left and
      ceil(P/2) bottom/right with P = k - s, giving n*s (§2.2).
    * Data-dependent init on the first call when `needs_init` is set (§2.4).
    """

    def __init__(self, kind: str, cin: int, cout: int, k: int = 1, stride: int = 1, in_hw: int = 1):
        super().__init__()
        self.kind, self.cin, self.cout, self.k, self.stride = kind, cin, cout, k, stride
        if kind == 'conv':
            self.conv = _WNParams((cout, cin, k, k), (cout, 1, 1, 1), cout)
            self.dim = 0
            lo, hi = same_pad(in_hw, k, stride)
            self.sym_pad, self.extra_pad = lo, hi - lo  # extra_pad is 0 or 1, applied bottom/right
        elif kind == 'convT':
            self.conv = _WNParams((cin, cout, k, k), (1, cout, 1, 1), cout)
            self.dim = 1
            p = k - stride
            self.crop_lo, self.crop_hi = p // 2, p - p // 2
        elif kind == 'linear':
            self.linear = _WNParams((cout, cin), (cout, 1), cout)
            self.dim = 0
        else:
            raise ValueError(kind)
        self.register_buffer('initialized', torch.tensor(False))
        self.needs_init = True   # python mirror of `initialized`, cleared by load/DDI
        self._folded: Optional[torch.Tensor] = None
        self._poly = None        # folded ConvTranspose2d as conv + pixel_shuffle (optimized flavour)
        self.polyphase = False   # unfolded too: build the polyphase kernel from W on every call (optimized training)

    @property
    def params(self) -> _WNParams:
        return self.linear if self.kind == 'linear' else self.conv

    def weight(self) -> torch.Tensor:
        """The effective weight (§2.3). torch._weight_norm is exactly what the weight_norm hook evaluates."""
        if self._folded is not None:
            return self._folded
        p = self.params
        return torch._weight_norm(p.weight_v, p.weight_g, self.dim)

    def fold(self, channels_last: bool = False) -> None:
        """Caches W (and, for a strided ConvTranspose2d, its polyphase conv form) until unfold()."""
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        with torch.no_grad():
            p = self.params
            self._folded = torch._weight_norm(p.weight_v, p.weight_g, self.dim).detach().clone()
            if self.kind == 'convT' and self.stride > 1:
                w, b, r = polyphase_kernel(self._folded, p.bias.detach(), self.k, self.stride)
                self._poly = (w.contiguous(memory_format=fmt), b, r)
            elif self.kind == 'conv':
                self._folded = self._folded.contiguous(memory_format=fmt)

    def unfold(self) -> None:
        self._folded = None
        self._poly = None

    def _apply_w(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, crop: bool = True) -> torch.Tensor:
        if self.kind == 'conv':
            if self.extra_pad:
                x = F.pad(x, (0, self.extra_pad, 0, self.extra_pad))
            return F.conv2d(x, w, b, self.stride, self.sym_pad)
        if self.kind == 'convT':
            y = F.conv_transpose2d(x, w, b, self.stride)
            if crop and (self.crop_lo or self.crop_hi):
                h, wd = y.shape[-2], y.shape[-1]
                y = y[..., self.crop_lo:h - self.crop_hi, self.crop_lo:wd - self.crop_hi]
            return y
        return F.linear(x, w, b)

    @torch.no_grad()
    def data_dependent_init(self, x: torch.Tensor) -> None:
        """§2.4: v ~ Kaiming-normal(fan_in, ReLU gain), g = 1, b = 0; y = layer(x) (pre-crop for ConvTranspose);
        g_c = 1/sqrt(var_c + 1e-8) with the unbiased variance, b_c = -mean_c * g_c."""
        p = self.params
        nn.init.kaiming_normal_(p.weight_v, mode='fan_in', nonlinearity='relu')
        p.weight_g.fill_(1.0)
        p.bias.zero_()
        y = self._apply_w(x, torch._weight_norm(p.weight_v, p.weight_g, self.dim), p.bias, crop=False)
        dims = (0,) if self.kind == 'linear' else (0, 2, 3)
        m = y.mean(dims)
        var = y.var(dims, unbiased=True)
        g = 1.0 / torch.sqrt(var + 1e-8)
        p.weight_g.copy_(g.view_as(p.weight_g))
        p.bias.copy_(-m * g)
        self.initialized.fill_(True)
        self.needs_init = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.needs_init:
            self.data_dependent_init(x)
        if self._poly is not None:
            w, b, r = self._poly
            return F.pixel_shuffle(F.conv2d(x, w, b, 1, r), self.stride)
        if self.polyphase and self.kind == 'convT' and self.stride > 1:
            w, b, r = polyphase_kernel(self.weight(), self.params.bias, self.k, self.stride)   # differentiable
            return F.pixel_shuffle(F.conv2d(x, w, b, 1, r), self.stride)
        p = self.params
        return self._apply_w(x, self.weight(), p.bias)


def polyphase_kernel(w: torch.Tensor, b: torch.Tensor, k: int, s: int):
    """Rewrites ConvTranspose2d(k, stride s) + the §2.2 crop (lo = floor((k-s)/2)) as ONE ordinary convolution with
    s*s*out channels followed by pixel_shuffle(s). Exact in real arithmetic; it only changes float rounding.

    Derivation (per spatial dim): the transposed conv gives y[o] = sum_{i,t: o = s*i + t} x[i] w[t]; after the crop,
    q = o - lo. For output phase p = q mod s (q = s*m + p) only taps t = s*j + tau_p contribute, tau_p = (p+lo) mod s,
    with input i = m + d_p - j, d_p = floor((p+lo)/s): a correlation of x with the flipped sub-kernel w[tau_p::s]
    over the window [m + d_p - J_p + 1, m + d_p]. All phases are embedded in one symmetric odd window (so oneDNN
    takes it) and stacked as output channels in pixel_shuffle order c*s*s + p_h*s + p_w.
    Used by the optimized flavour only: torch 1.13 runs ConvTranspose2d on CPU through im2col + BLAS, which is slow.
    Returns (weight, bias, padding)."""
    lo = (k - s) // 2
    taps = []
    for p in range(s):
        tau = (p + lo) % s
        taps.append((tau, -(-(k - tau) // s), (p + lo) // s))           # (tau_p, J_p, d_p)
    r = max(max(-(d - j + 1) for _, j, d in taps), max(d for _, _, d in taps))
    kk = 2 * r + 1
    cin, cout = w.shape[0], w.shape[1]
    big = w.new_zeros(cout, s, s, cin, kk, kk)
    for ph, (th, jh, dh) in enumerate(taps):
        for pw, (tw, jw, dw) in enumerate(taps):
            sub = w[:, :, th::s, tw::s].flip(2, 3).permute(1, 0, 2, 3)   # (out, in, J_h, J_w) in correlation order
            oh, ow = dh - jh + 1 + r, dw - jw + 1 + r
            big[:, ph, pw, :, oh:oh + jh, ow:ow + jw] = sub
    return big.reshape(cout * s * s, cin, kk, kk).contiguous(), b.repeat_interleave(s * s).contiguous(), r


def _spatial_resample_op(cin: int, cout: int, k: int, aux_hw: int, out_hw: int) -> Optional[NormedLayer]:
    """aux_op construction of §2.5 for a non-identical shape."""
    if aux_hw > out_hw:
        return NormedLayer('conv', cin, cout, k, aux_hw // out_hw, aux_hw)   # strided conv
    if aux_hw < out_hw:
        return NormedLayer('convT', cin, cout, k, out_hw // aux_hw, aux_hw)  # transposed conv + crop
    return NormedLayer('conv', cin, cout, 1, 1, aux_hw)                       # 1x1 conv (channels differ)


class ResBlock(nn.Module):
    """ResBlockConv2d (gated=False, dropout 0), §2.5.

    out = conv2(ReLU(conv1(a) + aux_op(ReLU(aux)))) + R(x), a = ReLU(x) if residual else x.
    R pads channels with zeros and, when the block downsamples, applies a 3x3 average pool (stride s) to x
    zero-padded TF-same (bottom/right); zeros count in the average.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int, in_hw: int, residual: bool, transposed: bool,
                 aux_shape: Optional[Tuple[int, int]], skip_mode: str):
        super().__init__()
        self.residual = residual
        self.conv1 = NormedLayer('conv', cin, cout, k, 1, in_hw)
        self.aux_op: Optional[NormedLayer] = None
        if aux_shape is not None:
            a_c, a_hw = aux_shape
            if (a_c, a_hw) != (cout, in_hw):
                self.aux_op = _spatial_resample_op(a_c, cout, k, a_hw, in_hw)
            elif skip_mode == 'paper':
                self.aux_op = NormedLayer('conv', a_c, cout, 1, 1, a_hw)   # live equal-shape skip (optional)
            # [REF] identical shape: aux_op None and the aux input is ignored entirely (§2.5 [BUG], §8 item 1)
        if transposed and stride > 1:
            self.conv2 = NormedLayer('convT', cout, cout, k, stride, in_hw)
            self.out_hw = in_hw * stride
        else:
            self.conv2 = NormedLayer('conv', cout, cout, k, stride, in_hw)
            self.out_hw = -(-in_hw // stride)
        self.cin, self.cout, self.in_hw = cin, cout, in_hw
        # residual path geometry (§2.5 step 6); an upsampling block never has a residual
        self.res_active = residual and self.out_hw <= in_hw
        self.pool_stride = in_hw // self.out_hw if self.out_hw < in_hw else 1
        self.pool_pad = same_pad(in_hw, 3, self.pool_stride) if self.pool_stride > 1 else (0, 0)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.cout > self.cin:
            x = F.pad(x, (0, 0, 0, 0, 0, self.cout - self.cin))
        elif self.cout < self.cin:
            x = x[:, :self.cout]
        if self.pool_stride > 1:
            lo, hi = self.pool_pad
            x = F.avg_pool2d(F.pad(x, (lo, hi, lo, hi)), 3, self.pool_stride)
        return x

    def forward(self, x: torch.Tensor, aux: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = self.conv1(F.relu(x) if self.residual else x)
        if self.aux_op is not None and aux is not None:
            y = y + self.aux_op(F.relu(aux))
        y = self.conv2(F.relu(y))
        if self.res_active:
            y = y + self.shortcut(x)
        return y


class DetModules(nn.Module):
    """A stage's deterministic blocks (`q_deterministic` / `p_deterministic`), §2.8."""

    def __init__(self, blocks: List[ResBlock]):
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def encode(self, x: torch.Tensor, aux: Optional[torch.Tensor]) -> torch.Tensor:
        """Inference: the same aux (h of the stage below) goes into every block."""
        for blk in self.layers:
            x = blk(x, aux)
        return x

    def decode(self, x: torch.Tensor, aux: Optional[List[torch.Tensor]]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Generation: block j gets aux[j] = output of block j of the stage above; returns (d, block outputs)."""
        outs = []
        for j, blk in enumerate(self.layers):
            x = blk(x, aux[j] if aux is not None else None)
            outs.append(x)
        return x, outs


class AsFeatureMap(nn.Module):
    """§2.7: dense latent (D,) -> weight-normed Linear D -> C*H*W -> reshape (C,H,W), C-major."""

    def __init__(self, d: int, shape: Tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        self.transform = NormedLayer('linear', d, shape[0] * shape[1] * shape[2])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.transform(z).view(z.shape[0], *self.shape)


class _SoftplusBuffers(nn.Module):
    """Only carries the official `std_activation_inverse.{beta,threshold}` buffers so saved files match §2.12."""

    def __init__(self):
        super().__init__()
        self.register_buffer('beta', torch.tensor([LN2], dtype=torch.float32))
        self.register_buffer('threshold', torch.tensor([20.0], dtype=torch.float32))


class Gaussian(nn.Module):
    """GaussianConv2d / GaussianDense (§2.6): ReLU -> weight-normed 3x3 conv or Linear -> 2D outputs,
    mu = first half, sigma = clamp(softplus_{beta=ln2, threshold=20}(r), min=1e-6). The top layer has no p-net:
    its prior is N(0, I) (the `prior_logits` buffer is zeros, and softplus_ln2(0) = 1)."""

    def __init__(self, dense: bool, d: int, q_in: Tuple[int, int, int], p_in: Optional[Tuple[int, int, int]],
                 top: bool):
        super().__init__()
        self.dense, self.d = dense, d

        def net(shape):
            c, h, w = shape
            return NormedLayer('linear', c * h * w, 2 * d) if dense else NormedLayer('conv', c, 2 * d, 3, 1, h)

        self.in_transform_q = net(q_in)
        self.in_transform_p = None if top else net(p_in)
        self.std_activation_inverse = _SoftplusBuffers()
        if top:
            self.register_buffer('prior_logits', torch.zeros(2 * d * (1 if dense else q_in[1] * q_in[2])))

    def _params(self, net: NormedLayer, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        t = F.relu(h)
        if self.dense:
            t = t.flatten(1)   # C-major (NCHW) flattening
        out = net(t)
        mu, r = out.chunk(2, dim=1)
        sigma = F.softplus(r, beta=LN2, threshold=20.0).clamp(min=1e-6)
        return mu, sigma

    def q_params(self, h):
        return self._params(self.in_transform_q, h)

    def p_params(self, d):
        return self._params(self.in_transform_p, d)


def normal_log_prob(z: torch.Tensor, mu, sigma) -> torch.Tensor:
    """log N(z; mu, sigma) elementwise (§2.6), written as torch.distributions.Normal.log_prob writes it."""
    var = sigma ** 2
    log_scale = sigma.log() if isinstance(sigma, torch.Tensor) else math.log(sigma)
    return -((z - mu) ** 2) / (2 * var) - log_scale - _LOG_SQRT_2PI


# ---------------------------------------------------------------------------------------------------------------------
# Likelihoods (§2.11)
# ---------------------------------------------------------------------------------------------------------------------

class BernoulliHead(nn.Module):
    """logits = conv3x3(ReLU(d1)); log p(x|z) = sum_{c,h,w} x*l - softplus(l) = -BCEWithLogits."""

    def __init__(self, c_in: int, c_out: int, hw: int):
        super().__init__()
        self.parameter_net = NormedLayer('conv', c_in, c_out, 3, 1, hw)

    def params(self, d1: torch.Tensor) -> torch.Tensor:
        return self.parameter_net(F.relu(d1))

    @staticmethod
    def log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(logits, x, reduction='none').flatten(1).sum(1)

    @staticmethod
    def sample(logits: torch.Tensor) -> torch.Tensor:
        """The unused sample the official head draws on every forward pass (§2.11 [INEFF])."""
        return torch.bernoulli(torch.sigmoid(logits))


class DLMHead(nn.Module):
    """Discretized logistic mixture (PixelCNN++ form), K components, 1x1 conv on d1 with NO activation (§2.11)."""

    def __init__(self, c_in: int, k: int, hw: int):
        super().__init__()
        self.k = k
        self.parameter_net = NormedLayer('conv', c_in, (3 * 3 + 1) * k, 1, 1, hw)

    def params(self, d1: torch.Tensor) -> torch.Tensor:
        return self.parameter_net(d1)   # [QUIRK] no ReLU here, unlike the Bernoulli head

    def _split(self, l: torch.Tensor):
        """Channel layout: 0..K-1 mixture logits; then for colour c, base = K + 3K*c: means, log-scales (clamped
        at -7), raw coefficients (tanh). Returns logits [B,H,W,K] and means/log_scales/coeffs [B,H,W,3,K]."""
        k = self.k
        l = l.permute(0, 2, 3, 1)
        logits = l[..., :k]
        rest = l[..., k:].reshape(*l.shape[:3], 3, 3 * k)
        means = rest[..., :k]
        log_scales = rest[..., k:2 * k].clamp(min=-7.0)
        coeffs = torch.tanh(rest[..., 2 * k:3 * k])
        return logits, means, log_scales, coeffs

    def log_prob(self, l: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits, means, log_scales, coeffs = self._split(l)
        xt = (2.0 * x - 1.0).permute(0, 2, 3, 1).unsqueeze(-1)        # x~ = 2x - 1, [B,H,W,3,1]
        xr, xg, xb = xt[..., 0, :], xt[..., 1, :], xt[..., 2, :]
        # autoregressive means on the true sub-pixels: slot 0 = G|R, slot 1 = B|R, slot 2 = B|G
        m_r = means[..., 0, :]
        m_g = means[..., 1, :] + coeffs[..., 0, :] * xr
        m_b = means[..., 2, :] + coeffs[..., 1, :] * xr + coeffs[..., 2, :] * xg
        m = torch.stack([m_r, m_g, m_b], dim=3)
        t = xt - m
        inv = torch.exp(-log_scales)
        plus_in = inv * (t + 1.0 / 255.0)
        min_in = inv * (t - 1.0 / 255.0)
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        log_cdf_plus = plus_in - F.softplus(plus_in)
        log_one_minus_cdf_min = -F.softplus(min_in)
        mid_in = inv * t
        log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
        # branch choice (the reference blends with 0/1 masks; torch.where gives identical finite results)
        inner_inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                                  log_pdf_mid - math.log(127.5))
        inner = torch.where(xt > 0.999, log_one_minus_cdf_min, inner_inner)
        lp = torch.where(xt < -0.999, log_cdf_plus, inner)
        lp = lp.sum(dim=3) + torch.log_softmax(logits, dim=-1)          # sum over colours + log mixture weights
        return torch.logsumexp(lp, dim=-1).flatten(1).sum(1)             # per pixel, then over H, W

    def sample(self, l: torch.Tensor) -> torch.Tensor:
        """The unused sample the official head draws on every pass: Gumbel-max over the mixture logits with
        uniforms in (1e-5, 1-1e-5), a logistic sample, autoregressive colour coupling, clamp to [-1,1], map to
        [0,1] (§2.11 [INEFF])."""
        logits, means, log_scales, coeffs = self._split(l)
        u = torch.empty_like(logits).uniform_(1e-5, 1.0 - 1e-5)
        sel = F.one_hot(torch.argmax(logits - torch.log(-torch.log(u)), dim=-1), self.k).to(l.dtype).unsqueeze(3)
        mu = (means * sel).sum(-1)
        ls = (log_scales * sel).sum(-1)
        cf = (coeffs * sel).sum(-1)
        u2 = torch.empty_like(mu).uniform_(1e-5, 1.0 - 1e-5)
        xs = mu + torch.exp(ls) * (torch.log(u2) - torch.log(1.0 - u2))
        x0 = xs[..., 0].clamp(-1, 1)
        x1 = (xs[..., 1] + cf[..., 0] * x0).clamp(-1, 1)
        x2 = (xs[..., 2] + cf[..., 1] * x0 + cf[..., 2] * x1).clamp(-1, 1)
        return (torch.stack([x0, x1, x2], dim=1) + 1.0) / 2.0


# ---------------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------------

class Stage(nn.Module):
    """One bottom-up VaeStage (§2.8): q_deterministic, stochastic, q_projection, p_deterministic, p_projection."""


@dataclass
class StageGeometry:
    in_shape: Tuple[int, int, int]    # encoder input (u_i)
    h_shape: Tuple[int, int, int]     # encoder output h_i
    z_shape: Tuple[int, ...]          # latent z_i
    dense: bool


class HVAE(nn.Module):
    """The bottom-up hierarchical VAE (`VAE` = `DeepVAE` with `VaeStage`s) of ALGORITHM.md §2."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = resolve_config(config)
        self.folded_channels_last: Optional[bool] = None
        cfg = self.config
        c_in, hw, _ = cfg['inputShape']
        skip = cfg['skipConnections']
        n = len(cfg['stages'])
        self.geom: List[StageGeometry] = []
        enc_block_outs: List[List[Tuple[int, int]]] = []
        in_shape = (c_in, hw, hw)
        stages = []
        # --- encoder geometry and modules (§2.8 inference, §2.5 in_residual rules)
        for i, s in enumerate(cfg['stages']):
            st = Stage()
            blocks, cur_c, cur_hw = [], in_shape[0], in_shape[1]
            aux_shape = None if i == 0 else (self.geom[i - 1].h_shape[0], self.geom[i - 1].h_shape[1])
            for j, (k, sd) in enumerate(zip(s['kernels'], s['strides'])):
                blk = ResBlock(cur_c, s['channels'], k, sd, cur_hw, residual=not (i == 0 and j == 0),
                               transposed=False, aux_shape=aux_shape, skip_mode=skip)
                blocks.append(blk)
                cur_c, cur_hw = s['channels'], blk.out_hw
            st.q_deterministic = DetModules(blocks)
            h_shape = (s['channels'], cur_hw, cur_hw)
            dense = s['latent']['type'] == 'dense'
            d = s['latent']['size']
            z_shape = (d,) if dense else (d, cur_hw, cur_hw)
            self.geom.append(StageGeometry(in_shape, h_shape, z_shape, dense))
            # AsFeatureMap projections (§2.7); the top q_projection exists but its output is unused ([INEFF])
            st.q_projection = AsFeatureMap(d, h_shape) if dense else None
            st.p_projection = AsFeatureMap(d, h_shape) if dense else None
            in_shape = h_shape if dense else z_shape
            stages.append(st)
        # --- Gaussian layers: q from h_i, p from d_{i+1} (shape: channels of stage i+1 at h_i's resolution)
        for i, st in enumerate(stages):
            g = self.geom[i]
            p_in = None if i == n - 1 else (cfg['stages'][i + 1]['channels'], g.h_shape[1], g.h_shape[2])
            st.stochastic = Gaussian(g.dense, cfg['stages'][i]['latent']['size'], g.h_shape, p_in, top=(i == n - 1))
        # --- decoder: reversed block list, stride-2 blocks upsample with a transposed conv, block 0 has no residual;
        #     block j of stage i gets the output of block j of stage i+1 as aux (§2.8)
        dec_outs_above: Optional[List[Tuple[int, int]]] = None
        for i in reversed(range(n)):
            s, g, st = cfg['stages'][i], self.geom[i], stages[i]
            cur_c = g.z_shape[0] if not g.dense else g.h_shape[0]
            cur_hw = g.h_shape[1]
            blocks, outs = [], []
            for j, (k, sd) in enumerate(zip(reversed(s['kernels']), reversed(s['strides']))):
                aux_shape = dec_outs_above[j] if dec_outs_above is not None and j < len(dec_outs_above) else None
                blk = ResBlock(cur_c, s['channels'], k, sd, cur_hw, residual=(j > 0), transposed=True,
                               aux_shape=aux_shape, skip_mode=skip)
                blocks.append(blk)
                cur_c, cur_hw = s['channels'], blk.out_hw
                outs.append((cur_c, cur_hw))
            st.p_deterministic = DetModules(blocks)
            dec_outs_above = outs
        self.stages = nn.ModuleList(stages)
        c0 = cfg['stages'][0]['channels']
        if cfg['likelihood'] == 'bernoulli':
            self.likelihood = BernoulliHead(c0, c_in, hw)
        else:
            self.likelihood = DLMHead(c0, cfg['mixtureComponents'], hw)

    # ----- bookkeeping -----------------------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.stages)

    def normed_layers(self) -> List[NormedLayer]:
        return [m for m in self.modules() if isinstance(m, NormedLayer)]

    def fold(self, channels_last: bool = False) -> None:
        """Fold W = g v/||v|| once (evaluation) (§2.3 [REC]); optionally store conv weights channels-last."""
        for m in self.normed_layers():
            m.fold(channels_last)
        self.folded_channels_last = channels_last

    def unfold(self) -> None:
        for m in self.normed_layers():
            m.unfold()
        self.folded_channels_last = None

    def set_polyphase(self, on: bool) -> None:
        """Run strided ConvTranspose2d layers as conv + pixel_shuffle (see polyphase_kernel) also when unfolded."""
        for m in self.normed_layers():
            m.polyphase = on

    def load_official(self, tensors: Dict[str, torch.Tensor], strict: bool = True) -> List[str]:
        """Loads parameters from an official-named state dict. `initialized`, `beta`, `threshold` and
        `prior_logits` entries are accepted but not needed. Returns the ignored names."""
        own = dict(self.named_parameters())
        ignored = []
        with torch.no_grad():
            for name, p in own.items():
                if name not in tensors:
                    if strict:
                        raise KeyError(f'missing tensor {name}')
                    continue
                t = tensors[name]
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f'{name}: shape {tuple(t.shape)} != {tuple(p.shape)}')
                p.copy_(t.to(p.dtype))
            for name in tensors:
                if name not in own:
                    ignored.append(name)
        for m in self.normed_layers():
            m.initialized.fill_(True)
            m.needs_init = False
        self.unfold()
        return ignored

    def official_state(self) -> Dict[str, torch.Tensor]:
        """The state under the official names (§2.12): F32 parameters and buffers, `initialized` as U8 scalars."""
        out = {}
        for name, t in self.state_dict().items():
            if name.endswith('.initialized'):
                out[name] = t.to(torch.uint8).reshape(())
            else:
                out[name] = t.detach().to(torch.float32).clone()
        return out

    @torch.no_grad()
    def data_dependent_init(self, x: torch.Tensor) -> None:
        """§2.4: one forward pass in train mode with a posterior sample; every normed layer initializes on its first
        call, in execution order (the dead top q_projection included)."""
        was = self.training
        self.train()
        for m in self.normed_layers():
            m.needs_init = True
            m.unfold()
        self.forward(x, dead_projection=True)
        self.train(was)

    # ----- one forward pass -------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, use_mode: Optional[Sequence[bool]] = None,
                decode_from_p: Optional[Sequence[bool]] = None,
                eps: Optional[Sequence[Optional[torch.Tensor]]] = None,
                sample_likelihood: bool = False, dead_projection: bool = False) -> dict:
        """One pass of the official `DeepVAE.forward` (§2.8, §4.1, §4.2).

        use_mode[l]:      inference uses z_l = mu_q (no eps consumed); with decode_from_p, generation uses mu_p.
        decode_from_p[l]: generation takes z_l from p(z_l | d_{l+1}) (its mean if use_mode[l], else a sample);
                          no KL term for layer l.
        eps[l]:           noise for z_l = mu_q + sigma_q * eps_l (consumed only in inference, only where
                          use_mode[l] is False); None draws from torch.randn.
        sample_likelihood: also draw the likelihood's unused sample, as the official heads do.
        dead_projection:  also compute the top stage's unused q_projection, as the official code does.

        Returns a dict with per-example `loglik` [B], `kl` (list, None for skipped layers), `kl_elem` (elementwise),
        `elbo` = loglik - sum_l KL_l (§3.1), and the intermediates q/p parameters, z and likelihood params.
        """
        n = self.n_layers
        use_mode = list(use_mode) if use_mode is not None else [False] * n
        decode_from_p = list(decode_from_p) if decode_from_p is not None else [False] * n
        # ---- inference x -> h1 -> z1 -> h2 -> ... (§2.8)
        u, aux = x, None
        q_mu, q_sig, z_q = [], [], []
        for i, st in enumerate(self.stages):
            h = st.q_deterministic.encode(u, aux)
            mu, sig = st.stochastic.q_params(h)
            if use_mode[i]:
                z = mu
            else:
                e = eps[i] if eps is not None and eps[i] is not None else randn_f32(mu)
                z = mu + e * sig                       # Normal(mu, sigma).rsample() = loc + eps * scale
            q_mu.append(mu), q_sig.append(sig), z_q.append(z)
            if i < n - 1 or dead_projection:
                u = st.q_projection(z) if st.q_projection is not None else z
            aux = h
        # ---- generation z_L -> d_L -> p(z_{L-1} | d_L) -> ... -> p(x | d_1)
        d, skips = None, None
        p_mu: List[Optional[torch.Tensor]] = [None] * n
        p_sig: List[Optional[torch.Tensor]] = [None] * n
        z_p: List[Optional[torch.Tensor]] = [None] * n
        kl: List[Optional[torch.Tensor]] = [None] * n
        kl_elem: List[Optional[torch.Tensor]] = [None] * n
        for i in reversed(range(n)):
            st = self.stages[i]
            if i == n - 1:   # top prior N(0, I) (§2.6)
                pm, ps = torch.zeros_like(q_mu[i]), torch.ones_like(q_sig[i])
            else:
                pm, ps = st.stochastic.p_params(d)
            p_mu[i], p_sig[i] = pm, ps
            if decode_from_p[i]:
                z = pm if use_mode[i] else pm + randn_f32(pm) * ps
            else:
                z = z_q[i]
                # one-sample MC KL at the posterior sample (§3.1)
                ke = normal_log_prob(z, q_mu[i], q_sig[i]) - normal_log_prob(z, pm, ps)
                kl_elem[i] = ke
                kl[i] = ke.flatten(1).sum(1)
            z_p[i] = z
            u = st.p_projection(z) if st.p_projection is not None else z
            d, skips = st.p_deterministic.decode(u, skips)
        lik = self.likelihood.params(d)
        loglik = self.likelihood.log_prob(lik, x)
        if sample_likelihood:
            self.likelihood.sample(lik)   # drawn and discarded, as the official head does
        elbo = loglik - sum(k for k in kl if k is not None)
        return {'loglik': loglik, 'kl': kl, 'kl_elem': kl_elem, 'elbo': elbo, 'q_mu': q_mu, 'q_sigma': q_sig,
                'z_q': z_q, 'p_mu': p_mu, 'p_sigma': p_sig, 'z': z_p, 'lik_params': lik}


# ---------------------------------------------------------------------------------------------------------------------
# Bounds and losses
# ---------------------------------------------------------------------------------------------------------------------

def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """§3.4: LME(a) = log(mean(exp(a - m)) + 1e-8) + m, m = max over `dim` (the reference's log_sum_exp)."""
    m, _ = a.max(dim=dim, keepdim=True)
    return (torch.log(torch.mean(torch.exp(a - m), dim=dim, keepdim=True) + 1e-8) + m).squeeze(dim)


def training_loss(out: dict, beta: float = 1.0, free_nats: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """§3.2 [REF]: loss_b = -log p(x_b|z) + beta * sum_l sum_elements max(KL_l^elem, free_nats / C_l), with
    C_l = kl.shape[1] (channels or features). free_nats = 0 uses the KL unchanged. Returns (per-example loss, ELBO);
    the minibatch loss is loss.mean()."""
    terms = []
    for ke in out['kl_elem']:
        if ke is None:
            continue
        if free_nats > 0:
            ke = torch.clamp(ke, min=free_nats / ke.shape[1])
        terms.append(ke.flatten(1).sum(1))
    loss = -out['loglik'] + beta * sum(terms)
    return loss, out['elbo']


# ---------------------------------------------------------------------------------------------------------------------
# Scoring flavour 1: official (§4.3)
# ---------------------------------------------------------------------------------------------------------------------

# eps_fn(role, idx, layer, lo, hi) -> noise for examples lo:hi of layer `layer`, or None for torch.randn.
#   role 'elbo': idx = ELBO sample s;  role 'lk': idx = k (the L>k pass);  role 'modes': the all-modes group.
EpsFn = Callable[[str, int, int, int, int], Optional[torch.Tensor]]


def score_official(model: HVAE, x: torch.Tensor, samples: int, ks: Sequence[int],
                   eps_fn: Optional[EpsFn] = None, keep_passes: bool = False) -> dict:
    """What `scripts/ood-llr.py` computes, run once per k (§4.3): S full forward passes for L^S, then S' = 1 full
    pass with the k-flags for L>k; LLR>k = L^S - L>k. Everything the official code repeats is repeated: L is
    recomputed for every k, W = g v/||v|| is recomputed on every layer call, the top q_projection is computed,
    and each pass draws the likelihood's unused sample. Runs under torch.no_grad() in eval mode.

    Returns {k: {'elbo': L^S [B], 'elbo_samples': [S,B], 'Lk': [B], 'llr': [B], 'passes': [...]}}."""
    model.eval()
    model.unfold()
    model.set_polyphase(False)   # plain ConvTranspose2d, as the official code
    n, b = model.n_layers, x.shape[0]

    def eps_for(role, idx, flags):
        if eps_fn is None:
            return None
        return [None if flags[l] else eps_fn(role, idx, l, 0, b) for l in range(n)]

    res = {}
    with torch.no_grad():
        for k in ks:
            passes, e = [], []
            for s in range(samples):   # the Python IW loop of the reference, one batch-B pass per sample
                o = model(x, [False] * n, [False] * n, eps_for('elbo', s, [False] * n), sample_likelihood=True,
                          dead_projection=True)
                e.append(o['elbo'])
                if keep_passes:
                    passes.append(o)
            e = torch.stack(e)
            flags = [True] * k + [False] * (n - k)   # decode_from_p = use_mode = [T]*k + [F]*(L-k) (§4.1)
            o = model(x, flags, flags, eps_for('lk', k, flags), sample_likelihood=True, dead_projection=True)
            if keep_passes:
                passes.append(o)
            ls = log_mean_exp(e, 0)
            lk = log_mean_exp(o['elbo'][None], 0)    # S' = 1
            res[k] = {'elbo': ls, 'elbo_samples': e, 'Lk': lk, 'llr': ls - lk, 'passes': passes}
    return res


# ---------------------------------------------------------------------------------------------------------------------
# Scoring flavour 2: optimized (§4.4)
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Group:
    """A block of B rows in the stacked batch. Layers l < m (0-based) use the posterior mean in inference; layers
    l < d take the conditional-prior mean in generation (no KL). ELBO sample: m = d = 0; L>k: m = d = k;
    all-modes pass: m = L, d = 0."""
    role: str
    idx: int
    m: int
    d: int


def make_groups(n_layers: int, samples: int, ks: Sequence[int], modes: bool = False) -> List[Group]:
    """Rows are ordered group by group: the S ELBO samples, then one group per k >= 1 (k = 0 reuses the first
    ELBO sample), then optionally the all-modes group."""
    groups = [Group('elbo', s, 0, 0) for s in range(samples)]
    for k in dict.fromkeys(ks):
        if k >= 1:
            groups.append(Group('lk', k, k, k))
    if modes:
        groups.append(Group('modes', 0, n_layers, 0))
    return groups


def _row_bytes(model: HVAE, n_groups: int) -> int:
    """Rough peak bytes per example for the stacked pass (activations of the largest stage, likelihood)."""
    c, hw, _ = model.config['inputShape']
    big = max(s['channels'] for s in model.config['stages']) * hw * hw
    lik = (model.config['mixtureComponents'] * 3 * 12 if model.config['likelihood'] == 'dlm' else 4 * c) * hw * hw
    return 4 * n_groups * (8 * big + lik)


def _stacked_pass(model: HVAE, x: torch.Tensor, groups: List[Group], eps_fn: Optional[EpsFn], lo: int) -> dict:
    """One chunk of examples, all groups stacked. Inference shares the mean path (§4.4): the stage-l encoder runs on
    the rows of groups that already sampled a z below l, plus once on the posterior-mean path for every group that
    has not (all groups share stage 1). Generation runs on all G*b rows with per-row masks."""
    n, b, G = model.n_layers, x.shape[0], len(groups)
    paper_aux = any(blk.aux_op is not None for st in model.stages for blk in st.q_deterministic.layers)
    qmu = [[None] * n for _ in range(G)]
    qsig = [[None] * n for _ in range(G)]
    zq = [[None] * n for _ in range(G)]
    inputs: Dict[int, torch.Tensor] = {}        # encoder input per own-row group for the current stage
    h_src: Dict[int, torch.Tensor] = {}         # previous stage's h per group (only for live encoder skips)
    u_mean, h_mean = x, None                     # the posterior-mean path
    for l, st in enumerate(model.stages):
        own = [g for g in range(G) if groups[g].m < l]          # groups that sampled some z below layer l
        need_mean = any(grp.m >= l for grp in groups)
        parts = [inputs[g] for g in own] + ([u_mean] if need_mean else [])
        u = torch.cat(parts) if len(parts) > 1 else parts[0]
        aux = None
        if paper_aux and l > 0:
            aux_parts = [h_src[g] for g in own] + ([h_mean] if need_mean else [])
            aux = torch.cat(aux_parts) if len(aux_parts) > 1 else aux_parts[0]
        h = st.q_deterministic.encode(u, aux)
        mu, sig = st.stochastic.q_params(h)
        mean_sl = slice(len(own) * b, (len(own) + 1) * b)
        for g, grp in enumerate(groups):
            sl = slice(own.index(g) * b, (own.index(g) + 1) * b) if grp.m < l else mean_sl
            qmu[g][l], qsig[g][l] = mu[sl], sig[sl]
            if grp.m > l:
                zq[g][l] = mu[sl]                                  # posterior mean (use_mode)
            else:
                e = eps_fn(grp.role, grp.idx, l, lo, lo + b) if eps_fn is not None else None
                if e is None:
                    e = randn_f32(mu[sl])
                zq[g][l] = mu[sl] + e * sig[sl]                    # z = mu + sigma * eps
            if paper_aux:
                h_src[g] = h[sl]
        if paper_aux and need_mean:
            h_mean = h[mean_sl]
        if l == n - 1:
            break                                                   # the top q_projection is dead: skip it
        nxt = [g for g in range(G) if groups[g].m <= l]             # own rows at the next stage
        need_mean_next = any(grp.m >= l + 1 for grp in groups)
        zs = [zq[g][l] for g in nxt] + ([mu[mean_sl]] if need_mean_next else [])
        zcat = torch.cat(zs) if len(zs) > 1 else zs[0]
        proj = st.q_projection(zcat) if st.q_projection is not None else zcat
        inputs = {g: proj[i * b:(i + 1) * b] for i, g in enumerate(nxt)}
        if need_mean_next:
            u_mean = proj[len(nxt) * b:]
    # ---- generation on all G*b rows
    kl = [[None] * n for _ in range(G)]
    d, skips = None, None
    for l in reversed(range(n)):
        st = model.stages[l]
        zq_all = torch.cat([zq[g][l] for g in range(G)])
        qm_all = torch.cat([qmu[g][l] for g in range(G)])
        qs_all = torch.cat([qsig[g][l] for g in range(G)])
        if l == n - 1:
            log_p = -(zq_all ** 2) / 2.0 - _LOG_SQRT_2PI            # N(0, I), the top prior
            pm = None
        else:
            pm, ps = st.stochastic.p_params(d)
            log_p = normal_log_prob(zq_all, pm, ps)
        kle = (normal_log_prob(zq_all, qm_all, qs_all) - log_p).flatten(1).sum(1)
        use_p = [grp.d > l for grp in groups]
        for g in range(G):
            if not use_p[g]:
                kl[g][l] = kle[g * b:(g + 1) * b]
        if any(use_p):
            mask = torch.tensor(use_p, device=zq_all.device).repeat_interleave(b)
            mask = mask.view(-1, *([1] * (zq_all.dim() - 1)))
            z = torch.where(mask, pm, zq_all)                       # conditional-prior mean for z_l, l <= k
        else:
            z = zq_all
        u = st.p_projection(z) if st.p_projection is not None else z
        d, skips = st.p_deterministic.decode(u, skips)
    lik = model.likelihood.params(d)
    xr = x.repeat(G, *([1] * (x.dim() - 1)))
    loglik = model.likelihood.log_prob(lik, xr)
    return {'loglik': [loglik[g * b:(g + 1) * b] for g in range(G)], 'kl': kl}


def score_optimized(model: HVAE, x: torch.Tensor, samples: int, ks: Sequence[int],
                    eps_fn: Optional[EpsFn] = None, modes: bool = False, mem_budget_mb: float = 1024.0,
                    chunk: Optional[int] = None) -> dict:
    """§4.4: weights folded once (call model.fold(channels_last=True) beforehand to keep it out of a timing; it is
    done here if needed), strided transposed convs as one conv + pixel_shuffle (polyphase_kernel), channels-last
    activations, inference_mode, the stage-1 encoder and the posterior-mean path computed once per example, the S
    ELBO samples computed once and reused for every k, all samples and all k stacked into one batch, chunked over
    examples to a memory budget, no likelihood sampling, no dead top q_projection. L>0 is the first ELBO sample (no
    extra pass), so LLR>0 = L^S - e_0.

    Returns {k: {'elbo', 'elbo_samples', 'Lk', 'llr'}, 'groups': [...], 'group_out': per-group loglik/kl}."""
    model.eval()
    if any(m._folded is None for m in model.normed_layers()) or not getattr(model, 'folded_channels_last', None):
        model.fold(channels_last=True)
    x = x.contiguous(memory_format=torch.channels_last)   # oneDNN's preferred layout: ~13% faster on CPU
    n, B = model.n_layers, x.shape[0]
    groups = make_groups(n, samples, ks, modes)
    G = len(groups)
    if chunk is None:
        chunk = max(1, min(B, int(mem_budget_mb * 2 ** 20 // _row_bytes(model, G))))
    logliks = [[] for _ in range(G)]
    kls = [[[] for _ in range(n)] for _ in range(G)]
    with torch.inference_mode():
        for lo in range(0, B, chunk):
            out = _stacked_pass(model, x[lo:lo + chunk], groups, eps_fn, lo)
            for g in range(G):
                logliks[g].append(out['loglik'][g])
                for l in range(n):
                    if out['kl'][g][l] is not None:
                        kls[g][l].append(out['kl'][g][l])
        group_out = []
        for g, grp in enumerate(groups):
            ll = torch.cat(logliks[g])
            kl = [torch.cat(kls[g][l]) if kls[g][l] else None for l in range(n)]
            elbo = ll - sum(k for k in kl if k is not None)
            group_out.append({'group': grp, 'loglik': ll, 'kl': kl, 'elbo': elbo})
        e = torch.stack([group_out[s]['elbo'] for s in range(samples)])
        ls = log_mean_exp(e, 0)
        res = {'groups': groups, 'group_out': group_out, 'chunk': chunk}
        for k in ks:
            if k == 0:
                lk = group_out[0]['elbo']
            else:
                gi = next(i for i, grp in enumerate(groups) if grp.role == 'lk' and grp.idx == k)
                lk = log_mean_exp(group_out[gi]['elbo'][None], 0)   # S' = 1
            res[k] = {'elbo': ls, 'elbo_samples': e, 'Lk': lk, 'llr': ls - lk}
    return res


# ---------------------------------------------------------------------------------------------------------------------
# Training step (both flavours)
# ---------------------------------------------------------------------------------------------------------------------

def train_step(model: HVAE, opt: torch.optim.Optimizer, x: torch.Tensor, flavour: str = 'official',
               beta: float = 1.0, free_nats: float = 0.0,
               eps: Optional[Sequence[Optional[torch.Tensor]]] = None,
               on_grads: Optional[Callable[[HVAE], None]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step: forward (1 posterior sample), per-example loss (§3.2), loss.mean().backward(), Adam step.
    'official': W recomputed on each layer call (hook-like), dead top q_projection computed, the likelihood's unused
    sample drawn, zero_grad() after the step (§5.2). 'optimized': the same math without the dead work; W is still
    recomputed once per layer per step (it must be, the parameters change every step). `on_grads(model)` is called
    between backward() and the optimizer step (the fixture check records gradients there). Returns (loss, elbo)."""
    model.train()
    model.unfold()
    official = flavour == 'official'
    model.set_polyphase(not official)
    out = model(x, eps=eps, sample_likelihood=official, dead_projection=official)
    loss, elbo = training_loss(out, beta, free_nats)
    loss.mean().backward()
    if on_grads is not None:
        on_grads(model)
    opt.step()
    opt.zero_grad(set_to_none=not official)
    return loss.detach(), elbo.detach()


def make_optimizer(model: HVAE, flavour: str = 'official', lr: float = 3e-4) -> torch.optim.Optimizer:
    """Adam(lr, betas (0.9, 0.999), eps 1e-8) over all parameters (§5.1); the optimized flavour uses the
    multi-tensor (foreach) implementation."""
    if flavour == 'official':
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def build_model(config: dict, weights: Optional[str] = None, seed: int = 1, init_batch: int = 64) -> HVAE:
    """Builds a model and either loads official-named weights or runs the data-dependent init (§2.4) on a random
    binarized (Bernoulli) or dequantized (DLM) batch drawn with a fixed seed."""
    torch.manual_seed(seed)
    model = HVAE(config)
    if weights:
        tensors, _ = load_safetensors(weights)
        model.load_official(tensors)
    else:
        model.data_dependent_init(random_batch(model.config, init_batch, seed + 1))
    return model


def random_batch(config: dict, n: int, seed: int) -> torch.Tensor:
    """A fixed-seed stand-in batch: binarized uniform grey levels (Bernoulli) or dequantized 8-bit values (DLM)."""
    gen = torch.Generator().manual_seed(seed)
    c, h, w = config['inputShape']
    if config['likelihood'] == 'bernoulli':
        return torch.bernoulli(torch.rand(n, c, h, w, generator=gen), generator=gen)
    v = torch.randint(0, 256, (n, c, h, w), generator=gen).float()
    return (v + torch.rand(n, c, h, w, generator=gen)) / 256.0
