"""The mechanism behind every ``droplab.torch`` variant: streams, the noise of one call and one
autograd Function.

What a variant is (its checks, noise shape, scale, edges and noise) is its spec in
:mod:`droplab.family`, shared with the NumPy engine; a module holds a
:class:`droplab._rng.NoiseStream` and, at each training forward, applies the spec's noise for
the stream's next :class:`~droplab._rng.Draw`. The bits are the NumPy engine's:

* **CPU fast path** (a Bernoulli variant whose mask has the input's full shape, float32/float64
  CPU tensor): :meth:`Draw.apply` (the kernels) runs on zero-copy ``numpy()`` views, forward and
  backward; the Function saves the draw (two Python ints), no tensor, and backward regenerates
  the mask.
* **Everything else on the CPU** (broadcast masks, other dtypes, Gaussian, Alpha, DropBlock):
  the spec computes ``(mult, shift)`` at the noise shape in NumPy (float32 for float16 and
  bfloat16, as PyTorch computes them) and torch multiplies; backward recomputes ``mult``.
* **Other devices (CUDA)**: Bernoulli masks come from :func:`philox_words`, a pure-torch
  Philox4x32-10 on int64 tensors that gives the kernels' 32-bit words on the device; the
  other noises are computed by the spec on the CPU and copied (the same bits everywhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from droplab import _rng, _validate, kernels
from droplab.family import Spec

__all__ = ["make_stream", "philox_words", "keep_tensor", "check_input", "Noise", "NoiseFunction", "apply"]

_FAST_DTYPES = (torch.float32, torch.float64)
_M32 = 0xFFFFFFFF
# Philox4x32 constants (Salmon et al., SC'11), as in droplab.kernels._reference
_PHILOX_M0, _PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


# -- streams -----------------------------------------------------------------------------------
def make_stream(where: str, seed, generator, spec: Spec | None = None) -> _rng.NoiseStream:
    """A module's noise stream: from ``seed`` (as the NumPy engine's layer of ``spec``) or a
    ``torch.Generator``."""
    if generator is not None:
        if seed is not None:
            raise ValueError(_validate.message(where, "generator", "None when `seed` is given", generator,
                                               "Pass either seed= or generator=, not both."))
        if not isinstance(generator, torch.Generator):
            raise TypeError(_validate.message(where, "generator", "a torch.Generator or None", generator))
        k = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64, device=generator.device)
        return _rng.NoiseStream.from_words(int(k[0]), int(k[1]))
    ss = _rng.seed_sequence(seed, where)
    return _rng.NoiseStream.from_seed(spec.split_seed(ss)[0] if spec is not None else ss)


def check_input(where: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(_validate.message(where, "x", "a torch.Tensor", type(x).__name__))
    if not x.is_floating_point():
        raise TypeError(_validate.message(where, "x", "a floating-point tensor", f"tensor of dtype {x.dtype}",
                                          "Convert it with x.float()."))
    return x


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype noise is computed in: float64 for float64, else float32 (as PyTorch's opmath)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _np(dtype: torch.dtype) -> np.dtype:
    return np.dtype(np.float64 if dtype == torch.float64 else np.float32)


# -- the bits on any device ------------------------------------------------------------------------
def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of ``a * m`` for uint32 values held in int64 (no overflow)."""
    t1 = (a & 0xFFFF) * m  # < 2**48
    t2 = (a >> 16) * m  # < 2**48
    mid = t2 + (t1 >> 16)
    return mid >> 16, ((mid & 0xFFFF) << 16) | (t1 & 0xFFFF)


def philox_words(n: int, key: tuple[int, int], counter: int, device="cpu") -> torch.Tensor:
    """The first ``n`` 32-bit words (int64 in [0, 2**32)) of call ``counter``, one per element:
    pure torch. Bit-identical to :func:`droplab.kernels._reference.words` on any device.

    Pass a draw's key and counter with ``draw.call(philox_words, n, device=device)``.
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


def keep_tensor(shape, p: float, draw: _rng.Draw, device) -> torch.Tensor:
    """Boolean keep-mask of ``shape`` on ``device``: the bits of ``draw.keep_mask``."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.from_numpy(draw.keep_mask(tuple(shape), p))
    words = draw.call(lambda key, counter: philox_words(math.prod(shape), key, counter, device))
    # int64 words against a threshold in [0, 2**32]: 0 keeps all, 2**32 drops all, as the kernels
    return (words >= kernels.threshold(p)).reshape(tuple(shape))


# -- the noise of one call (Python values only, never tensors) --------------------------------------
@dataclass(frozen=True, eq=False)
class Noise:
    """One training forward's noise: a spec with its options and ``p``, the draw, the noise shape."""

    spec: Spec
    options: dict = field(repr=False)
    p: float
    draw: _rng.Draw
    shape: tuple[int, ...]

    def fused(self, x: torch.Tensor) -> bool:
        return (self.spec.bernoulli and x.device.type == "cpu" and x.dtype in _FAST_DTYPES
                and x.layout == torch.strided and tuple(x.shape) == self.shape)

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mult, shift)`` at the noise shape on ``like``'s device, in the work dtype."""
        spec, work = self.spec, work_dtype(like.dtype)
        if spec.bernoulli and like.device.type != "cpu":
            keep = keep_tensor(self.shape, self.p, self.draw, like.device)
            return keep.to(work) * spec.scale(self.options, self.p), None
        mult, shift = spec.noise(self.options, self.p, self.draw, self.shape, _np(like.dtype))
        move = (lambda a: torch.from_numpy(a)) if like.device.type == "cpu" else (
            lambda a: torch.from_numpy(a).to(like.device))
        return move(mult), None if shift is None else move(shift)


def _fused_apply(x: torch.Tensor, noise: Noise, layout_like: torch.Tensor | None) -> torch.Tensor:
    """The kernels on zero-copy numpy views; the result takes ``layout_like``'s layout."""
    src = x.detach()
    if not src.is_contiguous():
        src = src.contiguous()
    # numpy's allocator asks for transparent huge pages on large arrays (torch's does not by
    # default): first-touch page faults on a fresh 64 MB output cost as much as the kernel.
    out_np = np.empty(tuple(src.shape), dtype=_np(src.dtype))
    noise.draw.apply(src.numpy(), noise.p, noise.spec.scale(noise.options, noise.p), out=out_np)
    out = torch.from_numpy(out_np)
    if layout_like is not None and not layout_like.is_contiguous():
        shaped = torch.empty_like(layout_like)
        shaped.copy_(out)
        return shaped
    return out


class NoiseFunction(torch.autograd.Function):
    """``y = x * mult + shift`` with ``mult`` regenerated in backward from the :class:`Noise`.

    The Noise holds Python values only (spec, key, counter, probability, shapes), so nothing is
    saved for backward but those: ``y.grad_fn`` holds no mask tensor.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, noise: Noise) -> torch.Tensor:
        ctx.noise = noise
        ctx.strides = None if x.is_contiguous() else (tuple(x.shape), tuple(torch.empty_like(x).stride()))
        if noise.fused(x):
            return _fused_apply(x, noise, x)
        mult, shift = noise.tensors(x)
        y = x * mult
        y = y if shift is None else y.add_(shift)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        noise = ctx.noise
        if noise.fused(dy):
            dx = _fused_apply(dy, noise, None)
            if ctx.strides is not None:  # give the gradient the input's layout, as PyTorch does
                shaped = torch.empty_strided(*ctx.strides, dtype=dx.dtype)
                shaped.copy_(dx)
                dx = shaped
        else:
            dx = (dy * noise.tensors(dy)[0]).to(dy.dtype)
        return dx, None


def apply(where: str, spec: Spec, options: dict, p: float, x, training: bool, next_draw) -> torch.Tensor:
    """The whole forward of an element-wise variant (modules and functional forms alike):
    check the input, take the noise shape (the rank rule holds in every mode and at every
    ``p``), then the identity (or the evaluation factor) or ``NoiseFunction`` with
    ``next_draw()``."""
    x = check_input(where, x)
    shape = spec.noise_shape(where, options, tuple(x.shape))
    if not training or p == 0:
        factor = spec.eval_factor(options, p) if not training else 1.0
        return x if factor == 1.0 else x * factor
    return NoiseFunction.apply(x, Noise(spec, options, p, next_draw(), shape))
