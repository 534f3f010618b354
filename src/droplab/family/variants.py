"""The specifications of droplab's dropout family (registered in :mod:`droplab.family`).

==================  ===============================================================  =========
variant             noise (training; evaluation is the identity unless noted)         rows own
==================  ===============================================================  =========
Dropout             Bernoulli per element (or shared along ``axes``); classic form    unless
                    ``inverted=False`` scales by ``1 - p`` in evaluation              axis 0
                                                                                       shared
Dropout1d/2d/3d     Bernoulli per (sample, channel) on ``(N, C, ...)``                yes
DropPath            Bernoulli per sample (``mode="row"``) or per batch                row mode
LockedDropout       Bernoulli per (sequence, feature), shared over time               batch_first
GaussianDropout     ``1 + sqrt(p/(1-p)) z``, z standard normal (Box-Muller)           as Dropout
AlphaDropout        affine: dropped units to SELU's saturation, mean/var kept         as Dropout
DropBlock2d         Bernoulli seeds grown into blocks, renormalised over the batch    no
DropConnect         Bernoulli on the weights of a linear layer                        per example
ConcreteDropout     relaxed Bernoulli with a learned ``p``                            yes
==================  ===============================================================  =========

Contract answers (the same in both engines):

* ``p`` is the probability of zeroing. ``p = 0`` and ``p = 1`` are legal everywhere except
  GaussianDropout (``p = 1``: infinite variance) and ConcreteDropout (a learned ``p`` needs a
  finite logit: ``0 < p < 1``). At ``p = 1`` Dropout and its channel, block, path and locked
  forms give zeros, AlphaDropout gives zeros (as PyTorch), DropConnect drops every weight.
* An input of the wrong rank is an error in training and evaluation, at every ``p``: the
  check depends on the input's shape only.
* Unbatched input: never for channel dropout or DropBlock. Every unbatched rank is also the
  batched rank of a neighbouring layout (``(C, L)`` is ``(N, F)``, ``(C, H, W)`` is
  ``(N, C, L)``, ``(C, D, H, W)`` is ``(N, C, H, W)``), so a shape alone cannot tell them
  apart; the error's hint says to add the batch axis with ``x[None]``.
* DropBlock on a map smaller than the block clips the block to the map (timm's rule): the
  block is ``min(block_size, H, W)``.
* Defaults are PyTorch's and timm's where they have one: ``DropPath(p=0.1)`` (DeiT's and
  timm's usual ``drop_path_rate``), ``DropBlock2d(p=0.1, block_size=7)`` (timm,
  Ghiasi et al.'s ImageNet setting).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from droplab import _validate, kernels
from droplab.family._spec import Option, Spec, choice, flag, keeps_rows, rank_error, shared_axes_shape

__all__ = ["SELU_ALPHA", "SELU_SCALE", "ALPHA_PRIME", "alpha_coefficients", "dropblock_gamma",
           "expected_drop_fraction", "SPECS"]

#: SELU's constants (Klambauer et al. 2017), the one copy in droplab
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: alpha' = -scale * alpha, the value SELU saturates to for x -> -inf
ALPHA_PRIME = -SELU_SCALE * SELU_ALPHA

_SEED_NOTE = "Masks are the same in ``droplab.nn`` and ``droplab.torch`` for the same seed."


def _axes_option(what: str) -> Option:
    return Option("axes", None, _validate.axes,
                  f"(int | tuple[int, ...] | None): axes along which one {what} value is shared (e.g. ``(2, 3)`` "
                  "on ``(N, C, H, W)``: one per channel). Default None (one per element).")


class _SharedAxesSpec(Spec):
    """A variant whose noise is drawn per element, or shared along its ``axes`` option."""

    def noise_shape(self, where, options, shape):
        return shared_axes_shape(where, options["axes"], shape)

    def rows_independent(self, options):
        return keeps_rows(options["axes"])


# -- Bernoulli masks of different shapes ------------------------------------------------------------
class DropoutSpec(_SharedAxesSpec):
    name, class_name = "dropout", "Dropout"
    options = (
        Option("inverted", True, flag("inverted"),
               "(bool): scale kept values by 1/(1-p) in training (True) or scale by 1-p in evaluation "
               "(False, the classic form). Default True."),
        _axes_option("mask"),
    )
    summary = "Zeroes each element with probability ``p`` while training."
    text = """
In training, with ``inverted=True`` (the default), ``y = x * m / (1 - p)`` with
``m ~ Bernoulli(1 - p)``, so ``E[y] = x`` and evaluation is the identity. With
``inverted=False`` (the classic form of Srivastava et al. 2014), training gives ``y = x * m``
and evaluation ``y = x * (1 - p)`` (weight scaling at inference). The gradient is the same
mask applied to ``dy``. Kept values are exactly ``x * dtype(1 / (1 - p))`` (the scale computed
in float64 and rounded once to the input's dtype, one rounding for the product; float16 and
bfloat16 compute in float32, as PyTorch); the realised drop probability is within ``2**-33``
of ``p`` (each element compares a 32-bit Philox word with ``round(p * 2**32)``). ``p = 1``
gives zeros, forward and backward. The mask is never stored: backward regenerates it from the
layer's key and call counter. """ + _SEED_NOTE
    reference = """Srivastava, Hinton, Krizhevsky, Sutskever and Salakhutdinov, "Dropout: A Simple Way
to Prevent Neural Networks from Overfitting", JMLR 15, 2014. The paper's ``p`` is the
RETAIN probability; droplab's ``p`` is the paper's ``1 - p``."""
    raises = ("ValueError: ``axes`` not axes of the input.",)
    examples = {
        "nn": """
>>> import numpy as np
>>> layer = Dropout(0.5, seed=0)
>>> y = layer.forward(np.ones((2, 1000), np.float32))
>>> y.shape, y.dtype, sorted(set(y.ravel().tolist()))
((2, 1000), dtype('float32'), [0.0, 2.0])
>>> bool(np.array_equal(layer.eval().forward(np.ones(3)), np.ones(3)))
True
""",
        "torch": """
>>> import torch
>>> layer = Dropout(0.5, seed=0)
>>> y = layer(torch.ones(2, 1000))
>>> y.shape, sorted(set(y.unique().tolist()))
(torch.Size([2, 1000]), [0.0, 2.0])
>>> x = torch.ones(3)
>>> layer.eval()(x) is x
True
"""}

    def scale(self, options, p):
        if not options["inverted"]:
            return 0.0 if p >= 1.0 else 1.0
        return kernels.keep_scale(p)

    def eval_factor(self, options, p):
        return 1.0 if options["inverted"] else 1.0 - p


class ChannelSpec(Spec):
    """Channel (spatial) dropout on ``(N, C, *spatial)``: one mask value per (sample, channel)."""

    spatial = 2
    p_doc = "probability that a whole channel is zeroed"
    reference = """Tompson, Goroshin, Jain, LeCun and Bregler, "Efficient Object Localization Using
Convolutional Networks", CVPR 2015 (spatial dropout)."""

    def noise_shape(self, where, options, shape):
        if len(shape) != self.spatial + 2:
            raise rank_error(where, shape, self.layout, self.rank_hint)
        return tuple(shape[:2]) + (1,) * self.spatial


def _channel(spatial: int, layout: str, hint: str) -> ChannelSpec:
    maps = {1: "sequences", 2: "feature maps", 3: "volumes"}[spatial]
    shape = (4, 8) + (3,) * spatial
    axes = tuple(range(2, 2 + spatial))
    spec = ChannelSpec()
    spec.spatial, spec.layout, spec.rank_hint = spatial, layout, hint
    spec.name = spec.class_name = f"Dropout{spatial}d"
    spec.name = spec.name.lower()
    spec.summary = f"Channel dropout on ``{layout}``: zeroes whole {maps} with probability ``p``."
    spec.text = f"""
Training: ``y[n, c] = x[n, c] * m[n, c] / (1 - p)``, ``m ~ Bernoulli(1 - p)`` per (sample,
channel), kept values ``x * dtype(1/(1 - p))`` as for ``Dropout``. Evaluation: identity.
Gradient: the same mask on ``dy``. Unbatched input is refused rather than guessed (a
{len(layout.split(',')) - 1}-D array is also a batch of another layout). {_SEED_NOTE}"""
    spec.examples = {
        "nn": f"""
>>> import numpy as np
>>> y = {spec.class_name}(0.5, seed=0).forward(np.ones({shape}, np.float32))
>>> y.shape, bool(((y == 0).all(axis={axes}) | (y == 2).all(axis={axes})).all())
({shape}, True)
""",
        "torch": f"""
>>> import torch
>>> y = {spec.class_name}(0.5, seed=0)(torch.ones{shape})
>>> bool(((y == 0).all(dim={axes}) | (y == 2).all(dim={axes})).all())
True
"""}
    return spec


class DropPathSpec(Spec):
    name, class_name = "drop_path", "DropPath"
    p_default = 0.1
    p_doc = "probability that a sample's path is zeroed"
    layout = "(N, *)"
    options = (Option("mode", "row", choice("mode", ("row", "batch")),
                      '(str): ``"row"`` (one draw per sample, timm\'s ``drop_path``) or ``"batch"`` (one draw for '
                      'the whole batch, the original stochastic depth). Default "row".'),)
    summary = "Stochastic depth: zeroes a whole sample (``mode=\"row\"``) or the whole batch (``\"batch\"``)."
    text = """
Put it at the end of a residual branch, ``x + drop_path(block(x))``, so that a dropped
sample passes through the block as the identity. Training: ``y[n] = x[n] * m[n] / (1 - p)``
(row) or ``y = x * m / (1 - p)`` with one ``m`` for the batch; evaluation: identity;
gradient: the same mask on ``dy``. The default ``p = 0.1`` is timm's and DeiT's usual
``drop_path_rate``. """ + _SEED_NOTE
    raises = ('ValueError: an unknown ``mode``.',)
    reference = """Huang, Sun, Liu, Sedra and Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016
(its ``p_l`` is the survival probability: droplab's ``p`` is ``1 - p_l``); Larsson, Maire
and Shakhnarovich, "FractalNet", ICLR 2017 (drop-path)."""
    examples = {
        "nn": """
>>> import numpy as np
>>> y = DropPath(0.5, seed=0).forward(np.ones((8, 3, 2), np.float32))
>>> y.shape, bool(((y == 0).all(axis=(1, 2)) | (y == 2).all(axis=(1, 2))).all())
((8, 3, 2), True)
""",
        "torch": """
>>> import torch
>>> y = DropPath(0.5, seed=0)(torch.ones(64, 3, 4))
>>> bool(((y == 0).all(dim=(1, 2)) | (y == 2).all(dim=(1, 2))).all())
True
"""}

    def noise_shape(self, where, options, shape):
        if len(shape) < 1:
            raise rank_error(where, shape, self.layout)
        first = shape[0] if options["mode"] == "row" else 1
        return (first,) + (1,) * (len(shape) - 1)

    def rows_independent(self, options):
        return options["mode"] == "row"


class LockedSpec(Spec):
    name, class_name = "locked_dropout", "LockedDropout"
    layout = "(N, T, F)"
    p_doc = "probability that a feature is zeroed for a whole sequence"
    options = (Option("batch_first", True, flag("batch_first"),
                      "(bool): input ``(N, T, F)`` (True) or ``(T, N, F)`` (False). Default True."),)
    rank_hint = "Sequences are (batch, time, features), or (time, batch, features) with batch_first=False."
    summary = "Locked (variational) dropout on sequences: one mask per sequence, shared over time."
    text = """
Training: ``y[n, t, f] = x[n, t, f] * m[n, f] / (1 - p)`` for every ``t``; evaluation:
identity; gradient: the same mask on ``dy``. """ + _SEED_NOTE
    reference = """Gal and Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
Neural Networks", NeurIPS 2016; Merity, Keskar and Socher, "Regularizing and Optimizing
LSTM Language Models", ICLR 2018 (``LockedDropout``)."""
    examples = {
        "nn": """
>>> import numpy as np
>>> y = LockedDropout(0.5, seed=0).forward(np.ones((4, 7, 5), np.float32))
>>> y.shape, bool(((y == 0) == (y[:, :1] == 0)).all())
((4, 7, 5), True)
""",
        "torch": """
>>> import torch
>>> y = LockedDropout(0.5, seed=0)(torch.ones(4, 10, 6))
>>> bool((y == y[:, :1]).all())
True
"""}

    def noise_shape(self, where, options, shape):
        if len(shape) != 3:
            raise rank_error(where, shape, self.layout if options["batch_first"] else "(T, N, F)", self.rank_hint)
        return (shape[0], 1, shape[2]) if options["batch_first"] else (1, shape[1], shape[2])

    def rows_independent(self, options):
        return options["batch_first"]


# -- other noise distributions ------------------------------------------------------------------------
class GaussianSpec(_SharedAxesSpec):
    name, class_name = "gaussian_dropout", "GaussianDropout"
    bernoulli = False
    p_one = False
    p_hint = "The noise variance p/(1-p) is infinite at p = 1."
    p_doc = "the drop probability whose noise variance ``p/(1-p)`` is matched"
    options = (_axes_option("noise"),)
    summary = "Multiplicative Gaussian noise ``N(1, p/(1-p))``: Bernoulli dropout's mean and variance."
    text = """
Training: ``y = x * (1 + sqrt(p/(1-p)) * z)``, ``z ~ N(0, 1)`` per element, so ``E[y] = x``.
``z`` is droplab's own Box-Muller transform of two 53-bit uniforms from one Philox block
(:meth:`droplab._rng.Draw.normal`), computed in float64 and rounded once to the input's
dtype: the same bits in both engines. Evaluation: identity. Gradient: ``dy`` times the same
noise. ``p = 1`` is refused: its variance is infinite (Keras divides by zero there). """ + _SEED_NOTE
    reference = """Srivastava et al., "Dropout", JMLR 2014, section 10 (their ``p`` is the retain
probability: the noise variance ``(1-p)/p`` there is ``p/(1-p)`` here)."""
    examples = {
        "nn": """
>>> import numpy as np
>>> y = GaussianDropout(0.5, seed=0).forward(np.ones(100_000))
>>> y.shape, bool(abs(y.mean() - 1) < 0.05), bool(abs(y.var() - 1) < 0.05)
((100000,), True, True)
""",
        "torch": """
>>> import torch
>>> y = GaussianDropout(0.5, seed=0)(torch.ones(200_000))
>>> abs(float(y.mean()) - 1) < 0.02, abs(float(y.var()) - 1) < 0.02
(True, True)
"""}

    def noise(self, options, p, draw, shape, dtype):
        sigma = math.sqrt(p / (1.0 - p))
        return (1.0 + sigma * draw.normal(shape)).astype(dtype), None


def alpha_coefficients(p: float) -> tuple[float, float, float]:
    """``(a, b, fill)`` of Alpha dropout at drop probability ``p`` as its 32-bit threshold
    realises it: ``y = a * x + b`` where kept and ``fill = a * alpha' + b`` where dropped, with
    ``q = 1 - p_eff``, ``a = (q + alpha'^2 q (1 - q))^(-1/2)``, ``b = -a (1 - q) alpha'``
    (Klambauer et al. 2017, eq. 7-9). When every unit is dropped (``q = 0``) all three are 0:
    the output is zeros, as PyTorch's ``alpha_dropout`` at ``p = 1``."""
    q = 1.0 - kernels.effective_p(p)
    if q <= 0.0:
        return 0.0, 0.0, 0.0
    a = (q + ALPHA_PRIME**2 * q * (1.0 - q)) ** -0.5
    b = -a * (1.0 - q) * ALPHA_PRIME
    return a, b, a * ALPHA_PRIME + b


class AlphaSpec(_SharedAxesSpec):
    name, class_name = "alpha_dropout", "AlphaDropout"
    bernoulli = False
    options = (_axes_option("mask"),)
    summary = "Alpha dropout: keeps the zero mean and unit variance of SELU activations."
    text = """
Training: with ``q = 1 - p_eff`` and ``alpha' = -scale * alpha`` (SELU's negative
saturation), ``y = a * (x * m + alpha' * (1 - m)) + b``, ``m ~ Bernoulli(q)``,
``a = (q + alpha'^2 q (1 - q))^(-1/2)``, ``b = -a (1 - q) alpha'``, so an input of mean 0 and
variance 1 keeps them (:func:`droplab.family.alpha_coefficients`). Evaluation: identity.
Gradient: ``dy * a * m``. At ``p = 1`` (and wherever the 32-bit threshold drops every unit)
the output is zeros, as in PyTorch. ``axes=(2, 3)`` on ``(N, C, H, W)`` is feature alpha
dropout. """ + _SEED_NOTE
    reference = """Klambauer, Unterthiner, Mayr and Hochreiter, "Self-Normalizing Neural Networks",
NeurIPS 2017 (their ``q`` is the keep probability: ``q = 1 - p``)."""
    examples = {
        "nn": """
>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal(200_000)
>>> y = AlphaDropout(0.2, seed=0).forward(x)
>>> bool(abs(y.mean()) < 0.02), bool(abs(y.var() - 1) < 0.02)
(True, True)
""",
        "torch": """
>>> import torch
>>> x = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
>>> y = AlphaDropout(0.2, seed=0)(x)
>>> abs(float(y.mean())) < 0.02, abs(float(y.var()) - 1) < 0.02
(True, True)
"""}

    def noise(self, options, p, draw, shape, dtype):
        a, b, fill = alpha_coefficients(p)
        keep = draw.keep_mask(shape, p)
        t = dtype.type
        return np.where(keep, t(a), t(0)), np.where(keep, t(b), t(fill))


# -- DropBlock -----------------------------------------------------------------------------------------
def _coverage(H: int, W: int, b: int) -> np.ndarray:
    """``c[i, j]``: how many seed positions (top-left corners of blocks inside the map) have a
    block covering ``(i, j)``."""
    i, j = np.arange(H), np.arange(W)
    ch = np.minimum(i, H - b) - np.maximum(0, i - b + 1) + 1
    cw = np.minimum(j, W - b) - np.maximum(0, j - b + 1) + 1
    return np.outer(ch, cw)


def expected_drop_fraction(H: int, W: int, block_size: int, gamma: float) -> float:
    """The exact expected dropped fraction of an ``H x W`` map for seed rate ``gamma``:
    ``mean over (i, j) of 1 - (1 - gamma)^c(i, j)`` (block clipped to the map)."""
    b = min(block_size, H, W)
    return float(np.mean(1.0 - (1.0 - gamma) ** _coverage(H, W, b)))


@functools.lru_cache(maxsize=256)
def dropblock_gamma(p: float, H: int, W: int, block_size: int, rule: str = "exact") -> float:
    """The seed rate of DropBlock on an ``H x W`` map (block clipped to ``min(block_size, H, W)``).

    ``"paper"``: Ghiasi et al.'s ``p / b^2 * H W / ((H - b + 1)(W - b + 1))``, which counts
    overlapping blocks twice and so drops less than ``p``; ``"exact"``: solves
    ``expected_drop_fraction(gamma) = p`` by bisection (60 steps; the fraction rises
    monotonically from 0 to 1). ``p = 1`` gives 1 (every seed: the blocks cover the map).
    """
    b = min(block_size, H, W)
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if rule == "paper":
        return min(1.0, p / b**2 * (H * W) / ((H - b + 1) * (W - b + 1)))
    cover = _coverage(H, W, b)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(np.mean(1.0 - (1.0 - mid) ** cover)) < p else (lo, mid)
    return 0.5 * (lo + hi)


class DropBlockSpec(Spec):
    name, class_name = "drop_block2d", "DropBlock2d"
    bernoulli = False
    p_default = 0.1
    p_doc = "the expected fraction of units zeroed"
    layout = "(N, C, H, W)"
    rank_hint = "Add a batch axis with x[None] for one image."
    positional = ("block_size",)
    options = (
        Option("block_size", 7, lambda where, v: _validate.positive_int(where, "block_size", v),
               "(int): side of a block; a map smaller than the block clips it to ``min(block_size, H, W)``. "
               "Default 7 (timm's, the paper's ImageNet setting)."),
        Option("shared_channels", False, flag("shared_channels"),
               "(bool): one block mask per sample shared by all channels (True) or one per (sample, "
               "channel) (False, the paper's choice). Default False."),
        Option("gamma", "exact", choice("gamma", ("exact", "paper")),
               '(str): the seed rate, ``"exact"`` or ``"paper"`` (see above). Default "exact".'),
    )
    summary = "DropBlock: drops contiguous ``block_size x block_size`` regions of feature maps."
    text = """
Training: block seeds are drawn ``Bernoulli(gamma)`` at the ``(H - b + 1) x (W - b + 1)``
positions where a whole block fits (top-left corners, so every block lies inside the map),
each seed zeroes its block, and the result is renormalised by ``count / kept`` over the WHOLE
batch tensor (the paper's Algorithm 1), so rows are not independent. Evaluation: identity.
Gradient: ``dy`` times the same mask and factor. A map smaller than the block clips the block
to ``b = min(block_size, H, W)`` (timm's rule).

``gamma``: the paper's ``gamma = p / b^2 * H W / ((H - b + 1)(W - b + 1))`` counts
overlapping blocks twice, so the realised fraction is BELOW ``p`` (0.095 for p = 0.1, b = 3
on 8 x 8). ``gamma="exact"`` (default) solves ``E[dropped fraction](gamma) = p`` by
bisection on the exact expectation (:func:`droplab.family.dropblock_gamma`,
:func:`droplab.family.expected_drop_fraction`). """ + _SEED_NOTE
    raises = ("ValueError: a non-positive ``block_size``; an unknown ``gamma``.",)
    reference = """Ghiasi, Lin and Le, "DropBlock: A regularization method for convolutional networks",
NeurIPS 2018 (their ``keep_prob`` is ``1 - p``)."""
    examples = {
        "nn": """
>>> import numpy as np
>>> y = DropBlock2d(0.2, 3, seed=0).forward(np.ones((64, 8, 8, 8), np.float32))
>>> y.shape, bool((y >= 0).all())
((64, 8, 8, 8), True)
""",
        "torch": """
>>> import torch
>>> y = DropBlock2d(0.2, 3, seed=0)(torch.ones(8, 4, 16, 16))
>>> y.shape, bool((y >= 0).all())
(torch.Size([8, 4, 16, 16]), True)
"""}

    def noise_shape(self, where, options, shape):
        if len(shape) != 4:
            raise rank_error(where, shape, self.layout, self.rank_hint)
        n, c, H, W = shape
        return (n, 1 if options["shared_channels"] else c, H, W)

    def rows_independent(self, options):
        return False  # the count / kept renormalisation is over the whole batch

    def noise(self, options, p, draw, shape, dtype):
        n, c, H, W = shape
        if 0 in shape:
            return np.ones(shape, dtype), None
        b = min(options["block_size"], H, W)
        gamma = dropblock_gamma(p, H, W, options["block_size"], options["gamma"])
        seeds = ~draw.keep_mask((n, c, H - b + 1, W - b + 1), gamma)
        rows = np.zeros((n, c, H, W - b + 1), bool)
        for k in range(b):  # grow each seed down, then right: a b x b block from its top-left corner
            rows[:, :, k:k + H - b + 1] |= seeds
        dropped = np.zeros(shape, bool)
        for k in range(b):
            dropped[..., k:k + W - b + 1] |= rows
        kept = dropped.size - int(np.count_nonzero(dropped))
        scale = dropped.size / kept if kept else 0.0
        return np.where(dropped, dtype.type(0), dtype.type(scale)), None


# -- variants around a layer -----------------------------------------------------------------------------
class DropConnectSpec(Spec):
    """DropConnect: the mask is on a linear layer's weights, drawn at ``(in, out)`` (or
    ``(N, in, out)`` per example) in both engines (``droplab.torch`` transposes it onto
    ``Linear.weight``'s ``(out, in)``)."""

    name, class_name = "drop_connect", "DropConnect"
    aliases = {"torch": ("DropConnectLinear",)}
    kind = "weights"
    wraps_layer = True
    p_doc = "probability that a weight is zeroed"
    layout = "(*, in_features)"
    #: the side stream of evaluation-time (Gaussian inference) noise
    INFERENCE_STREAM = 1
    options = (
        Option("per", "batch", choice("per", ("batch", "example")),
               '(str): ``"batch"``: one ``(in, out)`` mask per forward, shared by the rows; ``"example"``: '
               'an ``(N, in, out)`` mask, the paper\'s definition (input ``(N, in_features)``). Default "batch".'),
        Option("inference", "scale", choice("inference", ("scale", "gaussian")),
               '(str): ``"scale"`` (mean weights) or ``"gaussian"`` (Wan et al.\'s moment matching). '
               'Default "scale".'),
        Option("samples", 100, lambda where, v: _validate.positive_int(where, "samples", v),
               "(int): Gaussian inference draws. Default 100."),
    )
    summary = "A linear layer whose WEIGHTS are dropped: ``y = act(x @ (W * M / (1 - p)) + b)``."
    text = """
Training: the mask ``M`` is fresh per forward (``per="batch"``: one ``(in, out)`` mask shared
by the rows, the cost of a linear layer plus one mask) or per example (``per="example"``: an
``(N, in, out)`` mask, costing ``N * in * out`` memory). Kept weights are ``W * (1/(1-p))``;
at ``p = 1`` every weight is dropped (``y = act(b)``). Gradient: ``dW += x^T du * M/(1-p)``,
``dx = du (W * M/(1-p))^T``, ``db += sum du``.

Inference: ``inference="scale"`` uses the mean weights, ``y = act(x @ W + b)``;
``"gaussian"`` is Wan et al.'s moment matching: the pre-activation is treated as Gaussian with
mean ``x @ W + b`` and variance ``p/(1-p) * (x**2 @ W**2)``, and ``y`` averages ``act`` over
``samples`` draws. Those draws come from a side stream of the layer's key, the same at every
call (predictions are deterministic, and evaluation never moves or reuses the training
masks). At ``p = 1`` the variance is infinite and ``"gaussian"`` evaluates as
``"scale"``. Pass a non-linear ``activation`` here for moment matching to differ from
scaling. Masks are the same in ``droplab.nn`` and ``droplab.torch`` for the same seed (the
products are BLAS's: equal within float rounding)."""
    reference = """Wan, Zeiler, Zhang, LeCun and Fergus, "Regularization of Neural Networks using
DropConnect", ICML 2013. Their ``p`` is the KEEP probability of a weight: droplab's ``p`` is
``1 - p_Wan``, and their inference variance ``p(1-p) (W*W)(v*v)`` on unscaled weights is
``p/(1-p) (x**2 @ W**2)`` on droplab's inverted ones."""

    def input_shape(self, where, options, shape, in_features: int) -> None:
        """Raise unless ``shape`` is ``(*, in_features)`` (``(N, in_features)`` per example)."""
        if options["per"] == "example":
            if len(shape) != 2 or shape[1] != in_features:
                raise rank_error(where, shape, f"(N, {in_features})")
        elif len(shape) < 1 or shape[-1] != in_features:
            raise rank_error(where, shape, f"(*, {in_features})")

    def mask_shape(self, options, in_features: int, out_features: int, rows: int) -> tuple[int, ...]:
        w = (in_features, out_features)
        return w if options["per"] == "batch" else (rows,) + w

    def rows_independent(self, options):
        return options["per"] == "example"

    def inference_noise(self, stream, rows: int, samples: int, out_features: int) -> np.ndarray:
        """``(rows, samples, out)`` standard normals of Gaussian inference (row ``i``'s draws do
        not depend on the batch size), from the layer's inference side stream."""
        return stream.substream(self.INFERENCE_STREAM).at(0).normal((rows, samples, out_features))


class ConcreteSpec(Spec):
    name, class_name = "concrete_dropout", "ConcreteDropout"
    kind = "concrete"
    wraps_layer = True
    bernoulli = False
    p_default = 0.1
    p_zero = p_one = False
    p_hint = "A learned p needs a finite logit."
    p_doc = "initial probability that an input element is zeroed (then learned)"
    options = (
        Option("temperature", 0.1, lambda where, v: _validate.positive_float(where, "temperature", v),
               "(float): relaxation temperature, > 0. Default 0.1 (the paper's)."),
        Option("weight_regularizer", 1e-6, lambda where, v: _validate.nonnegative_float(where, "weight_regularizer", v),
               "(float): >= 0. Default 1e-6."),
        Option("dropout_regularizer", 1e-5,
               lambda where, v: _validate.nonnegative_float(where, "dropout_regularizer", v),
               "(float): >= 0. Default 1e-5."),
        Option("input_dim", None,
               lambda where, v: None if v is None else _validate.positive_int(where, "input_dim", v),
               "(int | None): ``D`` of the dropout term; None: the layer's ``in_features``, else the "
               "features per row of the last training input. Default None."),
    )
    summary = "Dropout on a layer's input whose rate ``p`` is learned (Concrete / relaxed Bernoulli)."
    text = """
``p = sigmoid(p_logit)``, ``p_logit`` a parameter. Training: ``u ~ U(0, 1)`` per element (53-bit
uniforms of the layer's draw) and ``s = sigmoid((logit(p) + log u - log(1 - u)) / t)`` (a relaxed
drop indicator, ``t = temperature``), ``y = layer(x * (1 - s) / (1 - p))``. Evaluation:
``y = layer(x)``. Gradient: ``dx = g * (1 - s) / (1 - p)`` with ``g`` the layer's input
gradient, and ``dp_logit = sum(g * x * (1 - s) / (1 - p) * (p - s / t))``; the noise is
computed once, in float64, by :mod:`droplab.family` for both engines.

The regulariser: ``weight_regularizer * sum(W**2) / (1 - p)`` over the layer's parameters, plus
``dropout_regularizer * D * (p log p + (1 - p) log(1 - p))``. With the paper's
``weight_regularizer = l**2 / N`` and ``dropout_regularizer = 2 / (tau N)`` both shrink as the
data size ``N`` grows, so the learned ``p`` falls: more data, less dropout. ``init_p`` is a
deprecated alias of ``p``."""
    reference = """Gal, Hron and Kendall, "Concrete Dropout", NeurIPS 2017 (``p`` there is already the
drop probability)."""

    @staticmethod
    def p_of(logit: float) -> float:
        """``sigmoid(logit)`` in float64."""
        return float(1.0 / (1.0 + math.exp(-logit))) if logit >= 0 else float(math.exp(logit) / (1.0 + math.exp(logit)))

    @staticmethod
    def logit_of(p: float) -> float:
        return math.log(p) - math.log1p(-p)

    def relaxed(self, logit: float, temperature: float, draw, shape) -> tuple[np.ndarray, np.ndarray]:
        """``(noise, s)`` in float64: ``noise = (1 - s) / (1 - p)``, ``s`` the relaxed indicator."""
        u = draw.uniform(shape)
        z = (logit + np.log(u) - np.log1p(-u)) / temperature
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # a sigmoid that cannot overflow
        return (1.0 - s) / (1.0 - self.p_of(logit)), s

    def logit_grad(self, g: np.ndarray, x: np.ndarray, noise: np.ndarray, s: np.ndarray, logit: float,
                   temperature: float) -> float:
        """``d loss / d p_logit`` of the dropout itself (float64 sum)."""
        p = self.p_of(logit)
        return float(np.sum(np.asarray(g, np.float64) * np.asarray(x, np.float64) * noise * (p - s / temperature)))

    def penalty(self, logit: float, squares: float, dim: int, weight_reg: float, dropout_reg: float) -> float:
        p = self.p_of(logit)
        entropy_term = p * math.log(p) + (1 - p) * math.log1p(-p)
        return weight_reg * squares / (1 - p) + dropout_reg * dim * entropy_term

    def penalty_logit_grad(self, logit: float, squares: float, dim: int, weight_reg: float,
                           dropout_reg: float) -> float:
        p = self.p_of(logit)
        d_dp = weight_reg * squares / (1 - p) ** 2 + dropout_reg * dim * (math.log(p) - math.log1p(-p))
        return d_dp * p * (1 - p)


SPECS: tuple[Spec, ...] = (
    DropoutSpec(),
    _channel(1, "(N, C, L)", "Use Dropout2d for (N, C, H, W); add the channel axis with x[:, None] for (N, L) "
                             "data, or the batch axis with x[None] for one (C, L) sequence."),
    _channel(2, "(N, C, H, W)", "Use Dropout1d for (N, C, L); add a batch axis with x[None] for one (C, H, W) image."),
    _channel(3, "(N, C, D, H, W)", "Add a batch axis with x[None] for one (C, D, H, W) volume."),
    DropPathSpec(),
    LockedSpec(),
    GaussianSpec(),
    AlphaSpec(),
    DropBlockSpec(),
    DropConnectSpec(),
    ConcreteSpec(),
)
