"""NumPy dropout implementations for the doctor's tests: one bug each, or none."""

import numpy as np


def correct(x, p, training=True):
    """Inverted dropout, as it should be."""
    if not training or p == 0:
        return x
    if p == 1:
        return np.zeros_like(x)
    keep = np.random.random(x.shape) >= p
    return x * keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))


def classic(x, p, training=True):
    """Classic dropout (Srivastava 2014): unscaled in training, x * (1 - p) in evaluation. Correct."""
    if not training:
        return x * x.dtype.type(1.0 - p)
    return x * (np.random.random(x.shape) >= p).astype(x.dtype)


def randn_mask(x, p, training=True):
    """Bug: the mask compares a NORMAL draw with the keep probability."""
    if not training:
        return x
    keep = 1 - p
    mask = (np.random.randn(*x.shape) < keep).astype(x.dtype)
    return x * mask / x.dtype.type(keep) if keep else x * 0


def keep_for_drop(x, p, training=True):
    """Bug: p is used as the keep probability."""
    if not training:
        return x
    mask = (np.random.random(x.shape) < p).astype(x.dtype)
    return x * mask * x.dtype.type(1.0 / p) if p else x * 0


def nan_at_one(x, p, training=True):
    """Bug: mask / keep with keep = 0 at p = 1 (NaN)."""
    if not training:
        return x
    keep = np.float32(1 - p)
    mask = (np.random.random(x.shape) < keep).astype(x.dtype)
    return x * (mask / keep)


def float64_mask(x, p, training=True):
    """Bug: a float64 mask upcasts float32 activations."""
    if not training:
        return x
    mask = (np.random.random(x.shape) >= p) / (1.0 - p) if p < 1 else np.zeros(x.shape)
    return x * mask


def no_rescaling(x, p, training=True):
    """Bug: no rescaling at train time and none at test time either."""
    if not training:
        return x
    return x * (np.random.random(x.shape) >= p).astype(x.dtype)


def active_in_eval(x, p, training=True):
    """Bug: ignores the training flag."""
    return correct(x, p, True)


def same_mask(x, p, training=True):
    """Bug: the generator is re-seeded at every call, so every call drops the same units."""
    if not training or p == 0:
        return x
    if p == 1:
        return np.zeros_like(x)
    rng = np.random.default_rng(0)
    return x * (rng.random(x.shape) >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))


def batch_shared(x, p, training=True):
    """Bug: one mask row broadcast over the whole batch."""
    if not training or p == 0:
        return x
    if p == 1:
        return np.zeros_like(x)
    keep = np.random.random((1,) + x.shape[1:]) >= p
    return x * keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))


def in_place(x, p, training=True):
    """Bug: multiplies the caller's array in place."""
    if not training or p == 0:
        return x
    if p == 1:
        x *= 0
        return x
    x *= (np.random.random(x.shape) >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x


class NNFSDropout:
    """A correct NNFS-style layer (the book's chapter 15 design, p = drop rate, with p = 1 guarded)."""

    def __init__(self, rate):
        self.rate = 1 - rate  # the book stores the keep rate

    def forward(self, inputs, training):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        scale = inputs.dtype.type(1 / self.rate) if self.rate > 0 else inputs.dtype.type(0)
        self.binary_mask = (np.random.random(inputs.shape) < self.rate).astype(inputs.dtype) * scale
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class NNFSRedrawInBackward(NNFSDropout):
    """Bug: backward draws a new mask instead of reusing forward's."""

    def backward(self, dvalues):
        scale = dvalues.dtype.type(1 / self.rate) if self.rate > 0 else dvalues.dtype.type(0)
        mask = (np.random.random(dvalues.shape) < self.rate).astype(dvalues.dtype) * scale
        self.dinputs = dvalues * mask


class NNFSNanAtOne:
    """Bug: the textbook layer as printed: at p = 1 it divides by a keep rate of 0."""

    def __init__(self, rate):
        self.rate = 1 - rate

    def forward(self, inputs, training):
        if not training:
            self.output = inputs.copy()
            return
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


def raises(x, p, training=True):
    """Bug: only works on 1-D input."""
    if x.ndim != 1:
        raise ValueError("expected a vector")
    return x
