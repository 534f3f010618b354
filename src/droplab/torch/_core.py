"""The mechanism behind every ``droplab.torch`` variant: the noise of one call, computed where
it must be, and the autograd Functions that apply it.

What a variant is (its checks, noise shape, scale, edges and noise) is its spec in
:mod:`droplab.family`, shared with the NumPy engine; where its randomness comes from is
:mod:`droplab.torch._random` (PyTorch's rules). A training forward applies the spec's noise
for one :class:`~droplab._rng.Draw`. The bits are the NumPy engine's everywhere:

* **CPU fast path** (a Bernoulli variant whose mask has the input's full shape, float32/float64
  plain CPU tensor): :meth:`Draw.apply` (the kernels) runs on zero-copy ``numpy()`` views,
  forward and backward; the Function saves the noise's Python values, no tensor, and backward
  regenerates the mask.
* **Other CPU cases** (broadcast masks, other dtypes, Gaussian, Alpha, DropBlock): the spec
  computes ``(mult, shift)`` at the noise shape in NumPy and torch multiplies; backward
  recomputes ``mult``.
* **Pure torch** (other devices, captured graphs, draws whose words are tensors): the same
  Philox4x32-10 words from :func:`philox_words` on int64 tensors, and droplab's formulas on
  them in torch (Gaussian's Box-Muller and Concrete's logistic noise use torch's ``log``,
  ``cos`` and ``tanh``, which may round the last bit differently from NumPy's).

``NoiseFunction`` is written in the ``setup_context`` style so ``torch.func`` transforms work:
``grad``/``vjp``/``jacrev`` (its backward is itself a ``NoiseFunction``, so second and higher
derivatives are exact and nothing is ever saved), ``jvp``/``jacfwd`` (a ``jvp`` rule) and
``vmap`` (a ``vmap`` rule honouring ``randomness=``: ``"error"`` raises, ``"same"`` shares one
noise across the mapped dimension, ``"different"`` draws the noise of the stacked batch, equal
to eager on the input with the mapped dimension merged into axis 0).

Under ``vmap(grad(f))`` (per-sample gradients) the rule stacks the noise one level below the
one ``setup_context`` sees, so each :class:`Noise` records the noise its rule applied in its
place (``lowered``) and the gradient replays the end of that chain: every sample's gradient
goes through that sample's own noise. A :class:`Noise` knows the vmap level of each stacked
dimension and of each dimension of the physical tensor it meets (``levels``, ``layout``), so a
backward under more vmaps than its forward (``vmap(jacrev(f))``'s cotangents) or fewer
(``jacrev(vmap(f))``), and nested vmaps of any ``randomness``, place the noise on the right
dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np
import torch

from droplab import _rng, _validate, kernels
from droplab.family import Spec, variants
from droplab.torch import _random

__all__ = ["make_stream", "philox_words", "keep_tensor", "check_input", "Noise", "NoiseFunction",
           "InplaceNoiseFunction", "DrawFunction", "apply", "noise_tensors", "uniform_tensor"]

_FAST_DTYPES = (torch.float32, torch.float64)
_M32 = 0xFFFFFFFF
# Philox4x32 constants (Salmon et al., SC'11), as in droplab.kernels._reference
_PHILOX_M0, _PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


# -- streams -----------------------------------------------------------------------------------
def check_generator(where: str, seed, generator) -> torch.Generator | None:
    if generator is None:
        return None
    if seed is not None:
        raise InvalidValueError(_validate.message(where, "generator", "None when `seed` is given", generator,
                                           "Pass either seed= or generator=, not both."))
    if not isinstance(generator, torch.Generator):
        raise InvalidTypeError(_validate.message(where, "generator", "a torch.Generator or None", generator))
    return generator


def make_stream(where: str, seed, generator=None, spec: Spec | None = None) -> _rng.NoiseStream | None:
    """A seeded module's noise stream, from ``seed`` exactly as the NumPy engine's layer of
    ``spec``; None for an unseeded one (``seed=None``, with or without ``generator``), which
    draws from torch's generator at each training forward (:mod:`droplab.torch._random`)."""
    check_generator(where, seed, generator)
    if seed is None:
        return None
    ss = _rng.seed_sequence(seed, where)
    return _rng.NoiseStream.from_seed(spec.split_seed(ss)[0] if spec is not None else ss)


def check_input(where: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(_validate.message(where, "x", "a torch.Tensor", type(x).__name__))
    if not x.is_floating_point():
        raise InvalidTypeError(_validate.message(where, "x", "a floating-point tensor", f"tensor of dtype {x.dtype}",
                                          "Convert it with x.float()."))
    return x


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype noise is computed in: float64 for float64, else float32 (as PyTorch's opmath)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _np(dtype: torch.dtype) -> np.dtype:
    return np.dtype(np.float64 if dtype == torch.float64 else np.float32)


# -- the bits on any device, from Python or tensor draws -------------------------------------------
def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of ``a * m`` for uint32 values held in int64 (no overflow)."""
    t1 = (a & 0xFFFF) * m  # < 2**48
    t2 = (a >> 16) * m  # < 2**48
    mid = t2 + (t1 >> 16)
    return mid >> 16, ((mid & 0xFFFF) << 16) | (t1 & 0xFFFF)


def _philox(n: int, k0, k1, c2v, c3v, device) -> torch.Tensor:
    """Words ``0 .. n-1`` of Philox4x32-10 with key ``(k0, k1)`` and counter words ``(c2v, c3v)``
    (Python ints or 0-d int64 tensors): element ``i`` is word ``i % 4`` of block ``i // 4``."""
    blocks = -(-n // 4)
    j = torch.arange(blocks, dtype=torch.int64, device=device)
    c0, c1 = j & _M32, j >> 32
    c2 = torch.zeros_like(j) + c2v
    c3 = torch.zeros_like(j) + c3v
    for r in range(10):
        if r:
            k0, k1 = (k0 + _PHILOX_W0) & _M32, (k1 + _PHILOX_W1) & _M32
        hi0, lo0 = _mulhilo(c0, _PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, _PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack((c0, c1, c2, c3), dim=1).reshape(-1)[:n]


def philox_words(n: int, key: tuple[int, int], counter: int, device="cpu") -> torch.Tensor:
    """The first ``n`` 32-bit words (int64 in [0, 2**32)) of call ``counter``, one per element:
    pure torch. Bit-identical to :func:`droplab.kernels._reference.words` on any device.

    Pass a draw's key and counter with ``draw.call(philox_words, n, device=device)``.
    """
    return _philox(n, key[0] & _M32, key[1] & _M32, counter & _M32, counter >> 32, device)


def _draw_words(draw, n: int, device) -> torch.Tensor:
    if isinstance(draw, _random.TensorDraw):
        return _philox(n, *draw.parts(), device)
    return draw.call(lambda key, counter: philox_words(n, key, counter, device))


def keep_tensor(shape, p: float, draw, device) -> torch.Tensor:
    """Boolean keep-mask of ``shape`` on ``device``: the bits of ``draw.keep_mask``."""
    device = torch.device(device)
    shape = tuple(shape)
    if isinstance(draw, _rng.Draw) and device.type == "cpu" and not _random.capturing():
        return torch.from_numpy(draw.keep_mask(shape, p))
    words = _draw_words(draw, math.prod(shape), device)
    # int64 words against a threshold in [0, 2**32]: 0 keeps all, 2**32 drops all, as the kernels
    return (words >= kernels.threshold(p)).reshape(shape)


def _u53(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    return (((hi << 21) | (lo >> 11)).to(torch.float64) + 0.5) * 2.0**-53


def _blocks(draw, n: int, device) -> torch.Tensor:
    return _draw_words(draw.continuous(), 4 * n, device).reshape(n, 4)


def uniform_tensor(draw, shape, device) -> torch.Tensor:
    """float64 uniforms on (0, 1): :meth:`droplab._rng.Draw.uniform` in torch."""
    shape = tuple(shape)
    if isinstance(draw, _rng.Draw) and torch.device(device).type == "cpu" and not _random.capturing():
        return torch.from_numpy(draw.uniform(shape))
    b = _blocks(draw, math.prod(shape), device)
    return _u53(b[:, 0], b[:, 1]).reshape(shape)


def normal_tensor(draw, shape, device) -> torch.Tensor:
    """float64 standard normals: :meth:`droplab._rng.Draw.normal` (Box-Muller) in torch."""
    shape = tuple(shape)
    b = _blocks(draw, math.prod(shape), device)
    u1, u2 = _u53(b[:, 0], b[:, 1]), _u53(b[:, 2], b[:, 3])
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)).reshape(shape)


def _dropblock_torch(spec, options, p, draw, shape, work, device):
    n, c, H, W = shape
    if 0 in shape:
        return torch.ones(shape, dtype=work, device=device)
    b = min(options["block_size"], H, W)
    gamma = variants.dropblock_gamma(p, H, W, options["block_size"], options["gamma"])
    seeds = (~keep_tensor((n, c, H - b + 1, W - b + 1), gamma, draw, device)).to(torch.uint8)
    pad = torch.nn.functional.pad
    rows = sum(pad(seeds, (0, 0, k, b - 1 - k)) for k in range(b))  # grow each seed down, then right
    dropped = sum(pad(rows, (k, b - 1 - k)) for k in range(b)) > 0
    numel = math.prod(shape)
    kept = numel - dropped.sum()
    scale = torch.where(kept > 0, numel / kept.clamp_min(1).to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                                            device=device))
    return torch.where(dropped, torch.zeros((), dtype=work, device=device), scale.to(work))


def noise_tensors(where: str, spec: Spec, options: dict, p: float, draw, shape, dtype: torch.dtype, device):
    """``(mult, shift)`` of the spec at ``shape``, on ``device``, in ``work_dtype(dtype)``.

    A :class:`~droplab._rng.Draw` on the CPU outside a captured graph takes the spec's own NumPy
    noise (bit-identical to ``droplab.nn``); otherwise the pure-torch implementation of the
    registered noises computes the same words on the device."""
    work = work_dtype(dtype)
    device = torch.device(device)
    shape = tuple(shape)
    numpy_ok = isinstance(draw, _rng.Draw) and not _random.capturing()
    if numpy_ok and (device.type == "cpu" or not spec.bernoulli):
        mult, shift = spec.noise(options, p, draw, shape, _np(dtype))
        move = (lambda a: torch.from_numpy(a)) if device.type == "cpu" else (lambda a: torch.from_numpy(a).to(device))
        return move(mult), None if shift is None else move(shift)
    zero = torch.zeros((), dtype=work, device=device)
    if spec.bernoulli:
        keep = keep_tensor(shape, p, draw, device)
        return torch.where(keep, torch.full((), spec.scale(options, p), dtype=work, device=device), zero), None
    noise = type(spec).noise
    if noise is variants.GaussianSpec.noise:
        sigma = math.sqrt(p / (1.0 - p))
        return (1.0 + sigma * normal_tensor(draw, shape, device)).to(work), None
    if noise is variants.AlphaSpec.noise:
        a, b, fill = variants.alpha_coefficients(p)
        keep = keep_tensor(shape, p, draw, device)
        t = lambda v: torch.full((), v, dtype=work, device=device)  # noqa: E731
        return torch.where(keep, t(a), zero), torch.where(keep, t(b), t(fill))
    if noise is variants.DropBlockSpec.noise:
        return _dropblock_torch(spec, options, p, draw, shape, work, device), None
    raise RuntimeError(f"{where}: this variant's noise is computed in NumPy only ({type(spec).__name__}.noise), "
                       "which a captured graph or another device cannot run. Use it eagerly on the CPU, or "
                       "register a Bernoulli spec.")


# -- the noise of one call ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Noise:
    """One training forward's noise: the spec with its options and ``p``, the draw, the noise
    shape (per sample of any ``vmap``), and how ``vmap`` and autograd have placed it:

    * ``lead``: the sizes ``vmap(randomness="different")`` stacked in front (outermost first),
      the noise being drawn for the stacked batch (eager's bits with ``lead`` merged into axis 0);
      ``levels``: the vmap level that stacked each (None once it is a dimension of the tensor
      itself: the level at which a gradient was saved lies inside that vmap);
    * ``layout``: the vmap levels of the physical tensor's leading dimensions in this call,
      outermost first, one per vmap rule the call went through. A level of ``levels`` takes its
      ``lead`` size there; any other (``randomness="same"``, or a vmap only the backward runs
      under, as ``jacrev``'s over the cotangents) takes 1: one noise shared along it;
    * ``grad``: the replay of a forward's noise for its gradient (linear, no shift).
    """

    where: str
    spec: Spec
    options: dict = field(repr=False)
    p: float
    draw: object
    shape: tuple[int, ...]
    lead: tuple[int, ...] = ()
    levels: tuple[int | None, ...] = ()
    layout: tuple[int, ...] = ()
    grad: bool = False
    #: the Noise a vmap rule applied in this one's place (set by the rule: ``setup_context``
    #: follows it to the noise the physical tensor got, see :class:`NoiseFunction`)
    lowered: Noise | None = field(default=None, init=False, repr=False)

    def full_shape(self) -> tuple[int, ...]:
        return self.lead + self.shape

    def target(self) -> tuple[int, ...]:
        """The noise's shape against the physical tensor of this call: one entry per ``layout``
        level (the ``lead`` size it stacked, else 1), then the ``lead`` that is the tensor's own,
        then ``shape``."""
        stacked = {lv: n for lv, n in zip(self.levels, self.lead) if lv is not None}
        if not stacked and not self.layout:
            return self.full_shape()
        if not stacked.keys() <= set(self.layout):  # NoiseFunction's anchor prevents it
            raise RuntimeError(f"{self.where}: internal error: a noise stacked by vmap levels {sorted(stacked)} "
                               f"applied to a tensor mapped over levels {list(self.layout)}.")
        own = tuple(n for lv, n in zip(self.levels, self.lead) if lv is None)
        return tuple(stacked.get(lv, 1) for lv in self.layout) + own + self.shape

    def stacked_levels(self) -> bool:
        """Whether some vmap outside the current transform level drew this noise per slice."""
        return any(lv is not None for lv in self.levels)

    def fused(self, x: torch.Tensor) -> bool:
        return (self.spec.bernoulli and isinstance(self.draw, _rng.Draw) and _random.plain(x)
                and x.device.type == "cpu" and x.dtype in _FAST_DTYPES and x.layout == torch.strided
                and tuple(x.shape) == self.full_shape() == self.target() and not _random.capturing())

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mult, shift)`` on ``like``'s device, in the work dtype, at :meth:`target` (drawn at
        the full shape with the stacked ``lead`` merged into axis 0: eager's bits for the stacked
        batch)."""
        full = self.full_shape()
        calc = full
        if self.lead:
            first = math.prod(self.lead) * (self.shape[0] if self.shape else 1)
            calc = (first,) + self.shape[1:]
        mult, shift = noise_tensors(self.where, self.spec, self.options, self.p, self.draw, calc, like.dtype,
                                    like.device)
        target = self.target()
        if calc != target:
            mult = mult.reshape(target)
            shift = None if shift is None else shift.reshape(target)
        return mult, None if self.grad else shift

    def under(self, info) -> Noise:
        """This noise in a vmap rule (run one level below its vmap): stacked in front when the
        vmap draws per slice, else shared along it; recorded as :attr:`lowered`."""
        level = (torch._C._functorch.maybe_current_level() or 0) + 1  # functorch's levels are stack depths
        if self.grad or info.randomness == "same":
            lowered = replace(self, layout=(level,) + self.layout)
        else:
            lowered = replace(self, lead=(int(info.batch_size),) + self.lead, levels=(level,) + self.levels,
                              layout=(level,) + self.layout)
        object.__setattr__(self, "lowered", lowered)
        return lowered

    def for_gradient(self) -> Noise:
        """The noise to replay for this call's gradient, saved at the current transform level:
        the noise the physical tensor got (through every vmap rule below), its vmap levels above
        this one now dimensions of the tensor itself."""
        noise = self
        while noise.lowered is not None:
            noise = noise.lowered
        level = torch._C._functorch.maybe_current_level() or 0
        levels = tuple(None if lv is None or lv > level else lv for lv in noise.levels)
        return replace(noise, grad=True, levels=levels, layout=())


def _fused_apply(x: torch.Tensor, noise: Noise, layout_like: torch.Tensor | None) -> torch.Tensor:
    """The kernels on zero-copy numpy views; the result takes ``layout_like``'s layout."""
    src = x.detach()
    if not src.is_contiguous():
        src = src.contiguous()
    # The kernels' output comes from their recycled-memory pool (kernels._pool) when it is
    # large: first-touch page faults on a fresh 64 MB output cost as much as the kernel. The
    # tensor keeps the pooled buffer alive; it returns to the pool when the tensor dies.
    out = torch.from_numpy(noise.draw.apply(src.numpy(), noise.p, noise.spec.scale(noise.options, noise.p)))
    if layout_like is not None and not layout_like.is_contiguous():
        shaped = torch.empty_like(layout_like)
        shaped.copy_(out)
        return shaped
    return out


def _vmap_error(where: str) -> RuntimeError:
    return RuntimeError(f"{where}: vmap(randomness='error') refuses random operations, and a training-mode "
                        f"{where} draws noise. Pass randomness='different' (independent noise per mapped "
                        "slice) or 'same' (one noise shared), or put the module in eval mode.")


class NoiseFunction(torch.autograd.Function):
    """``y = x * mult + shift`` with ``mult`` regenerated from the :class:`Noise` for the gradient.

    The Noise holds Python values (spec, key, counter, probability, shapes), so nothing is
    saved for backward: ``y.grad_fn`` holds no mask tensor. The gradient ``dy * mult`` is
    itself a ``NoiseFunction`` (the same noise, linear), so every order of derivative is exact.
    """

    @staticmethod
    def forward(x: torch.Tensor, noise: Noise) -> torch.Tensor:
        if noise.fused(x):
            return _fused_apply(x, noise, x)
        mult, shift = noise.tensors(x)
        y = x * mult
        y = y if shift is None else y + shift
        return y.to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, noise = inputs
        # a vmap rule below may have stacked the noise (randomness="different"): the gradient
        # replays what the physical tensor got, not the per-slice noise this level was given
        ctx.noise = noise.for_gradient()
        # a cotangent need not be mapped by those vmaps (vjp's, made inside the mapped function):
        # adding this zero, mapped by them, maps it so that every slice gets its own noise
        ctx.anchor = x.new_zeros(()) if ctx.noise.stacked_levels() else None
        ctx.strides = None if x.is_contiguous() else (tuple(x.shape), tuple(torch.empty_like(x).stride()))

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        noise = replace(ctx.noise)  # a fresh object: vmap rules record on it what they applied
        if ctx.anchor is not None:
            dy = dy + ctx.anchor
        if torch.is_grad_enabled() or not noise.fused(dy):  # create_graph, transforms, other paths
            dx = NoiseFunction.apply(dy, noise)
        else:
            dx = _fused_apply(dy, noise, None)
        if ctx.strides is not None and _random.plain(dx) and tuple(dx.stride()) != ctx.strides[1]:
            shaped = torch.empty_strided(*ctx.strides, dtype=dx.dtype, device=dx.device)  # the input's layout
            shaped.copy_(dx)
            dx = shaped
        return dx, None

    @staticmethod
    def jvp(ctx, dx: torch.Tensor, _noise):
        return NoiseFunction.apply(dx if ctx.anchor is None else dx + ctx.anchor, replace(ctx.noise))

    @staticmethod
    def vmap(info, in_dims, x: torch.Tensor, noise: Noise):
        d = in_dims[0]
        if d is None:
            return NoiseFunction.apply(x, noise), None
        if not noise.grad and info.randomness == "error":
            raise _vmap_error(noise.where)
        return NoiseFunction.apply(x.movedim(d, 0), noise.under(info)), 0


class InplaceNoiseFunction(torch.autograd.Function):
    """:class:`NoiseFunction` writing into its input (torch's ``inplace=True``; eager, plain
    tensors): the same values and gradient, ``x`` marked dirty so autograd rebases its history
    (and refuses a leaf that requires grad, as torch does)."""

    @staticmethod
    def forward(x: torch.Tensor, noise: Noise) -> torch.Tensor:
        if noise.fused(x) and x.is_contiguous():
            a = x.detach().numpy()
            noise.draw.apply(a, noise.p, noise.spec.scale(noise.options, noise.p), out=a)  # the kernels allow out=x
        else:
            x.copy_(NoiseFunction.forward(x, noise))
        return x

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.mark_dirty(inputs[0])
        NoiseFunction.setup_context(ctx, inputs, output)

    backward = NoiseFunction.backward
    jvp = NoiseFunction.jvp


class DrawFunction(torch.autograd.Function):
    """A noise tensor of one call (no gradient), made by ``make(lead)`` at ``lead + shape``:
    a Function only so that ``vmap`` can tell it how to batch (``randomness=``). ``anchor`` is
    any input that ``vmap`` maps (it is not read)."""

    @staticmethod
    def forward(anchor: torch.Tensor, make, where: str) -> torch.Tensor:
        return make(())

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.mark_non_differentiable(output)

    @staticmethod
    def backward(ctx, grad):
        return None, None, None

    @staticmethod
    def jvp(ctx, *tangents):
        return None  # noise does not depend on the input: no tangent

    @staticmethod
    def vmap(info, in_dims, anchor, make, where):
        d = in_dims[0]
        if d is None or info.randomness == "same":
            return DrawFunction.apply(anchor, make, where), None
        if info.randomness == "error":
            raise _vmap_error(where)
        batch = int(info.batch_size)
        # Under nested vmaps the innermost rule runs first and the outer rules wrap its ``make``
        # with their own batch: the outer sizes arrive in ``lead`` (outermost first) and this
        # level's batch goes after them, so the tensor's dimensions are outer, then inner.
        return DrawFunction.apply(anchor.movedim(d, 0), lambda lead: make(lead + (batch,)), where), 0


def draw_tensor(anchor: torch.Tensor, make, where: str) -> torch.Tensor:
    """``make(())`` eagerly; through :class:`DrawFunction` under ``torch.func`` transforms (so
    ``vmap`` batches it by its ``randomness=``); directly in a captured graph."""
    if _random.capturing() or _random.plain(anchor):
        return make(())
    return DrawFunction.apply(anchor, make, where)


def apply(where: str, spec: Spec, options: dict, p: float, x, training: bool, next_draw,
          inplace: bool = False) -> torch.Tensor:
    """The whole forward of an element-wise variant (modules and functional forms alike):
    check the input, take the noise shape (the rank rule holds in every mode and at every
    ``p``), then the identity (or the evaluation factor), or the noise of ``next_draw(x)``:
    through :class:`NoiseFunction`, or as plain torch operations in a captured graph (so the
    graph holds the draw and the Philox, and draws anew at each execution). ``inplace``: the
    result is written into ``x``, which is returned (torch's ``inplace=True``)."""
    x = check_input(where, x)
    shape = spec.noise_shape(where, options, tuple(x.shape))
    if not training or p == 0:
        factor = spec.eval_factor(options, p) if not training else 1.0
        if factor == 1.0:
            return x
        return x.mul_(factor) if inplace else x * factor
    noise = Noise(where, spec, options, p, next_draw(x), shape)
    if _random.capturing():
        mult, shift = noise.tensors(x)
        y = x * mult
        y = (y if shift is None else y + shift).to(x.dtype)
        return x.copy_(y) if inplace else y
    if not inplace:
        return NoiseFunction.apply(x, noise)
    if _random.plain(x):
        if not torch.is_grad_enabled() and torch.autograd.forward_ad._current_level < 0:
            # nothing to record: write into x and return x itself, as torch (an autograd Function
            # under no_grad would return another tensor object for a leaf that requires grad)
            InplaceNoiseFunction.forward(x, noise)
            torch.autograd.graph.increment_version(x)  # the kernels write through numpy: tell autograd
            return x
        return InplaceNoiseFunction.apply(x, noise)
    return x.copy_(NoiseFunction.apply(x, noise))  # under torch.func transforms
