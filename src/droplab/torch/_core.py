"""The mechanism behind every ``droplab.torch`` variant: keys, masks and one autograd Function.

A mask element is the same pure function of ``(key, counter, element index)`` as in
:mod:`droplab.kernels` (Philox4x32-10, one 32-bit word per element against the 32-bit
threshold ``round(p * 2**32)``), so a torch module and a NumPy layer with the same seed draw
the same masks, and kept values are ``x * (1 / (1 - p))`` rounded as in PyTorch. Three ways to get those bits:

* **CPU fast path** (a contiguous-after-copy float32/float64 CPU tensor whose mask has the
  input's full shape): :func:`droplab.kernels.apply` runs on zero-copy ``numpy()`` views of
  the torch storage, forward and backward; the Function saves the key and the counter (plain
  Python ints), no tensor, and backward regenerates the mask.
* **CPU, other dtypes or broadcast masks** (bf16, fp16; channel, locked, DropPath masks):
  the mask is drawn by the kernels at the (small) noise shape, cast, and multiplied in torch.
* **Other devices (CUDA)**: :func:`philox_words`, a pure-torch Philox4x32-10 on int64
  tensors, computes the same 32-bit words on the device. No Triton kernel is used.

Non-Bernoulli noise (Gaussian, Concrete's uniforms) comes from a ``torch.Generator`` seeded
from ``(key, counter)``: reproducible and regenerable, but not the NumPy engine's stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from droplab import _rng, _validate, kernels

__all__ = [
    "make_key",
    "keep_tensor",
    "philox_words",
    "NoiseFunction",
    "Bernoulli",
    "Alpha",
    "Gaussian",
    "BlockMask",
    "alpha_constants",
    "dropblock_gamma",
]

_FAST_DTYPES = (torch.float32, torch.float64)
_M32 = 0xFFFFFFFF
# Philox4x32 constants (Salmon et al., SC'11), as in droplab.kernels._reference
_PHILOX_M0, _PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


# -- keys ---------------------------------------------------------------------------------------
def make_key(where: str, seed, generator) -> tuple[int, int]:
    """The Philox key of a module: from ``seed`` (as the NumPy engine) or a ``torch.Generator``."""
    if generator is not None:
        if seed is not None:
            raise ValueError(_validate.message(where, "generator", "None when `seed` is given", generator,
                                               "Pass either seed= or generator=, not both."))
        if not isinstance(generator, torch.Generator):
            raise TypeError(_validate.message(where, "generator", "a torch.Generator or None", generator))
        k = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64, device=generator.device)
        return int(k[0]), int(k[1])
    return _rng.mask_key(_rng.seed_sequence(seed, where))


def _torch_seed(key: tuple[int, int], counter: int) -> int:
    """A 63-bit torch seed that is a pure function of ``(key, counter)`` (for non-Bernoulli noise)."""
    words = np.random.SeedSequence([key[0], key[1], counter & _M32, counter >> 32]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _generator(key: tuple[int, int], counter: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(_torch_seed(key, counter))
    return g


# -- the bits ---------------------------------------------------------------------------------
def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of ``a * m`` for uint32 values held in int64 (no overflow)."""
    t1 = (a & 0xFFFF) * m  # < 2**48
    t2 = (a >> 16) * m  # < 2**48
    mid = t2 + (t1 >> 16)
    return mid >> 16, ((mid & 0xFFFF) << 16) | (t1 & 0xFFFF)


def philox_words(n: int, key: tuple[int, int], counter: int, device="cpu") -> torch.Tensor:
    """The first ``n`` 32-bit words (int64 in [0, 2**32)) of call ``counter``, one per element:
    pure torch.

    Bit-identical to :func:`droplab.kernels._reference.words` on any device.
    """
    blocks = -(-n // 4)
    j = torch.arange(blocks, dtype=torch.int64, device=device)
    c0, c1 = j & _M32, j >> 32
    c2 = torch.full_like(j, counter & _M32)
    c3 = torch.full_like(j, counter >> 32)
    k0, k1 = key[0] & _M32, key[1] & _M32
    for r in range(10):
        if r:
            k0, k1 = (k0 + _PHILOX_W0) & _M32, (k1 + _PHILOX_W1) & _M32
        hi0, lo0 = _mulhilo(c0, _PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, _PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack((c0, c1, c2, c3), dim=1).reshape(-1)[:n]  # element i: word i % 4 of block i // 4


def keep_tensor(shape, p: float, key: tuple[int, int], counter: int, device) -> torch.Tensor:
    """Boolean keep-mask of ``shape`` on ``device``; the same bits as :func:`kernels.keep_mask`."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.from_numpy(kernels.keep_mask(tuple(shape), p, key, counter))
    n = math.prod(shape)
    # int64 words against a threshold in [0, 2**32]: 0 keeps all, 2**32 drops all, as the kernels
    return (philox_words(n, key, counter, device) >= kernels.threshold(p)).reshape(shape)


def _mask_values(shape, p, key, counter, scale, dtype, device) -> torch.Tensor:
    """``scale`` where kept, 0 where dropped, at ``shape`` (kernels' products on the CPU)."""
    device = torch.device(device)
    if device.type == "cpu" and dtype in _FAST_DTYPES:
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        return torch.from_numpy(kernels.mask_values(tuple(shape), p, key, counter, scale, np_dtype))
    keep = keep_tensor(shape, p, key, counter, device)
    # float32 for bf16/fp16: x * mask then rounds once, as torch's x * scale does
    return keep.to(_compute_dtype(dtype)) * scale


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in _FAST_DTYPES else torch.float32


# -- noise specifications: what the Function applies (Python values only, never tensors) ------
@dataclass(frozen=True)
class Bernoulli:
    """``x * m``, ``m = scale`` where kept, 0 where dropped, drawn at ``noise_shape``."""

    p: float
    key: tuple[int, int]
    counter: int
    scale: float
    noise_shape: tuple[int, ...]

    def fused(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.dtype in _FAST_DTYPES and x.layout == torch.strided
                and tuple(x.shape) == self.noise_shape)

    def multiplier(self, like: torch.Tensor) -> torch.Tensor:
        return _mask_values(self.noise_shape, self.p, self.key, self.counter, self.scale, like.dtype, like.device)

    def shift(self, like: torch.Tensor):
        return None


def alpha_constants(p: float) -> tuple[float, float, float]:
    """``(a, b, alpha')`` of Alpha dropout for drop probability ``p`` (as its 32-bit threshold realises it).

    Klambauer et al. 2017, eq. 7-9, with keep ``q = 1 - p``: ``alpha' = -lambda * alpha``,
    ``a = (q + alpha'^2 q (1 - q))^(-1/2)``, ``b = -a (1 - q) alpha'``.
    """
    alpha_p = -1.0507009873554805 * 1.6732632423543772
    q = 1.0 - kernels.effective_p(p)
    if q <= 0.0:
        return 0.0, 0.0, alpha_p
    a = (q + alpha_p * alpha_p * q * (1.0 - q)) ** -0.5
    return a, -a * (1.0 - q) * alpha_p, alpha_p


@dataclass(frozen=True)
class Alpha:
    """Alpha dropout: ``a * (x * m + alpha' * (1 - m)) + b``; the gradient is ``a * m * dy``."""

    p: float
    key: tuple[int, int]
    counter: int
    noise_shape: tuple[int, ...]

    def fused(self, x):
        return False

    def _keep(self, like):
        return keep_tensor(self.noise_shape, self.p, self.key, self.counter, like.device)

    def multiplier(self, like):
        a, _, _ = alpha_constants(self.p)
        return self._keep(like).to(_compute_dtype(like.dtype)) * a

    def shift(self, like):
        a, b, alpha_p = alpha_constants(self.p)
        keep = self._keep(like)
        dropped = torch.full(self.noise_shape, a * alpha_p + b, dtype=_compute_dtype(like.dtype), device=like.device)
        return torch.where(keep, torch.full_like(dropped, b), dropped)


@dataclass(frozen=True)
class Gaussian:
    """``x * e``, ``e ~ N(1, p / (1 - p))`` from a generator seeded by ``(key, counter)``."""

    p: float
    key: tuple[int, int]
    counter: int
    noise_shape: tuple[int, ...]

    def fused(self, x):
        return False

    def multiplier(self, like):
        sigma = math.sqrt(self.p / (1.0 - self.p))
        g = _generator(self.key, self.counter, like.device)
        e = torch.randn(self.noise_shape, generator=g, dtype=_compute_dtype(like.dtype), device=like.device)
        return e.mul_(sigma).add_(1.0)

    def shift(self, like):
        return None


@lru_cache(maxsize=256)
def dropblock_gamma(p: float, height: int, width: int, block: int) -> float:
    """The seed rate gamma whose expected dropped fraction is exactly ``p``.

    Seeds are top-left corners of blocks that fit inside the map; a pixel covered by ``c``
    possible blocks survives with probability ``(1 - gamma)**c``, so the dropped fraction is
    ``1 - mean((1 - gamma)**c)``, solved for gamma by bisection (it is increasing in gamma).
    Ghiasi et al.'s closed form ignores overlaps and so drops less than ``p``.
    """
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    hs, ws = height - block + 1, width - block + 1
    rows = np.minimum(np.minimum(np.arange(height) + 1, block), np.minimum(height - np.arange(height), block))
    rows = np.minimum(rows, hs)
    cols = np.minimum(np.minimum(np.arange(width) + 1, block), np.minimum(width - np.arange(width), block))
    cols = np.minimum(cols, ws)
    cover = np.outer(rows, cols).astype(np.float64)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if 1.0 - np.mean((1.0 - mid) ** cover) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class BlockMask:
    """DropBlock: seeds drawn with rate ``gamma``, grown into ``block`` x ``block`` squares,
    survivors scaled by ``numel / kept`` (0 when nothing is kept)."""

    gamma: float
    key: tuple[int, int]
    counter: int
    block: int
    noise_shape: tuple[int, ...]  # (N, C or 1, H, W)

    def fused(self, x):
        return False

    def multiplier(self, like):
        n, c, h, w = self.noise_shape
        b = self.block
        seeds_shape = (n, c, h - b + 1, w - b + 1)
        seeds = ~keep_tensor(seeds_shape, self.gamma, self.key, self.counter, like.device)
        work = _compute_dtype(like.dtype)
        grown = torch.nn.functional.max_pool2d(
            torch.nn.functional.pad(seeds.to(work), (b - 1, b - 1, b - 1, b - 1)), b, stride=1)
        keep = 1.0 - grown
        kept = float(keep.sum())
        scale = keep.numel() / kept if kept > 0 else 0.0
        return keep * scale

    def shift(self, like):
        return None


# -- the one autograd Function --------------------------------------------------------------
def _fused_apply(x: torch.Tensor, spec: Bernoulli, layout_like: torch.Tensor | None) -> torch.Tensor:
    """``kernels.apply`` on zero-copy numpy views; the result takes ``layout_like``'s layout."""
    src = x.detach()
    if not src.is_contiguous():
        src = src.contiguous()
    # numpy's allocator asks for transparent huge pages on large arrays (torch's does not by
    # default): first-touch page faults on a fresh 64 MB output cost as much as the kernel.
    out_np = np.empty(tuple(src.shape), dtype=np.float32 if src.dtype == torch.float32 else np.float64)
    kernels.apply(src.numpy(), spec.p, spec.key, spec.counter, spec.scale, out=out_np)
    out = torch.from_numpy(out_np)
    if layout_like is not None and not layout_like.is_contiguous():
        shaped = torch.empty_like(layout_like)
        shaped.copy_(out)
        return shaped
    return out


class NoiseFunction(torch.autograd.Function):
    """``y = x * noise + shift`` with ``noise`` regenerated in backward from ``spec``.

    ``spec`` holds Python values only (key, counter, probability, shapes), so nothing is
    saved for backward but those numbers: ``y.grad_fn`` holds no mask tensor.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, spec) -> torch.Tensor:
        ctx.spec = spec
        ctx.strides = None if x.is_contiguous() else (tuple(x.shape), tuple(torch.empty_like(x).stride()))
        if spec.fused(x):
            return _fused_apply(x, spec, x)
        y = x * spec.multiplier(x)
        s = spec.shift(x)
        y = y if s is None else y.add_(s)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        spec = ctx.spec
        if spec.fused(dy):
            dx = _fused_apply(dy, spec, None)
            if ctx.strides is not None:  # give the gradient the input's layout, as PyTorch does
                shaped = torch.empty_strided(*ctx.strides, dtype=dx.dtype)
                shaped.copy_(dx)
                dx = shaped
        else:
            dx = (dy * spec.multiplier(dy)).to(dy.dtype)
        return dx, None
