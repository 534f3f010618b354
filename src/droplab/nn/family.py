"""The dropout family in the NumPy engine: each variant is a spec of :mod:`droplab.family`
applied by :class:`~droplab.nn.Dropout`'s one mechanism.

The element-wise variants are generated from their specs (:func:`variant`), so their
constructor, checks, noise and docstring are the ones ``droplab.torch`` uses too.
``DropConnect`` (the mask is on a Dense layer's weights) and ``ConcreteDropout`` (a learned
``p``) wrap another layer and are written here, around their specs.
"""

from __future__ import annotations

import math

from droplab.errors import InvalidTypeError
import numpy as np

from droplab import _rng, _validate, family
from droplab.nn.dropout import SEED_DOC, Dropout, as_input, register_class, variant
from droplab.nn.layers import Dense
from droplab.nn.module import Module, Parameter

__all__ = [
    "Dropout1d", "Dropout2d", "Dropout3d", "DropPath", "LockedDropout", "GaussianDropout",
    "AlphaDropout", "DropBlock2d", "DropConnect", "ConcreteDropout", "variant",
]

Dropout1d = variant("dropout1d")
Dropout2d = variant("dropout2d")
Dropout3d = variant("dropout3d")
DropPath = variant("drop_path")
LockedDropout = variant("locked_dropout")
GaussianDropout = variant("gaussian_dropout")
AlphaDropout = variant("alpha_dropout")
DropBlock2d = variant("drop_block2d")

_DC_ENGINE_DOC = """in_features, out_features (int): the Dense's sizes.
    activation (Module | None): applied after the affine map (e.g. ``nn.ReLU()``). Default None.
    init (str): the Dense's initialisation. Default "he".
    dtype: float32 (default) or float64.
    """ + SEED_DOC

_DC_EXAMPLE = """
>>> import numpy as np
>>> layer = DropConnect(5, 3, p=0.5, seed=0)
>>> x = np.ones((4, 5), np.float32)
>>> layer.forward(x).shape
(4, 3)
>>> bool(np.allclose(layer.eval().forward(x), x @ layer.weight.value + layer.bias.value))
True
"""


@register_class
class DropConnect(Dropout):
    __doc__ = family.get("drop_connect").docstring("nn", _DC_ENGINE_DOC, _DC_EXAMPLE)

    spec = family.get("drop_connect")

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, *, per: str = "batch",
                 inference: str = "scale", samples: int = 100, activation: Module | None = None,
                 init: str = "he", seed: _rng.Seed = None, dtype=np.float32) -> None:
        where = "DropConnect"
        self.dense = Dense(in_features, out_features, init=init, seed=0, dtype=dtype)
        if activation is not None and not isinstance(activation, Module):
            raise InvalidTypeError(_validate.message(where, "activation", "a droplab Module or None", activation))
        self.activation = activation
        self._init = init
        super().__init__(p, per=per, inference=inference, samples=samples, seed=seed)

    def config(self) -> dict:
        d = self.dense
        return {"in_features": d.in_features, "out_features": d.out_features, "p": self.p, **self._options,
                "init": self._init, "dtype": d.dtype.name}

    @property
    def weight(self) -> Parameter:
        return self.dense.weight

    @property
    def bias(self) -> Parameter:
        return self.dense.bias

    def children(self) -> list[Module]:
        return [self.dense] + ([self.activation] if self.activation is not None else [])

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        mask_ss, weight_ss = self.spec.split_seed(ss)
        super()._reseed(mask_ss)
        self.dense._reseed(weight_ss)

    def noise_shape(self, shape):
        """The weight mask's shape for an input of ``shape`` (raises for a wrong input shape)."""
        d = self.dense
        self.spec.input_shape("DropConnect", self._options, tuple(shape), d.in_features)
        rows = math.prod(shape[:-1]) if len(shape) else 1
        return self.spec.mask_shape(self._options, d.in_features, d.out_features, rows)

    def _act(self, u: np.ndarray) -> np.ndarray:
        return u if self.activation is None else self.activation.forward(u)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_input("DropConnect", x).astype(self.dense.dtype, copy=False)
        shape = self.noise_shape(x.shape)
        W, b = self.dense.weight.value, self.dense.bias.value
        lead = x.shape[:-1]
        x2 = x.reshape(-1, W.shape[0])
        p = self.p
        if self.training and p > 0:
            draw = self.rng.next()
            self._state = ("train", draw, shape, x2, lead)
            Wm = W * draw.mask_values(shape, p, self.scale, W.dtype)
            u = x2 @ Wm if Wm.ndim == 2 else np.einsum("ni,nio->no", x2, Wm)
            return self._act(u + b).reshape(lead + (W.shape[1],))
        mean = x2 @ W + b
        if self.training or self._options["inference"] == "scale" or p in (0.0, 1.0):
            self._state = ("eval", x2, lead)
            return self._act(mean).reshape(lead + (W.shape[1],))
        # Wan et al.'s moment matching, from the inference side stream (never the training one)
        self._state = ("gaussian",)
        sd = np.sqrt(p / (1 - p) * ((x2 * x2) @ (W * W)))
        samples = self._options["samples"]
        z = self.spec.inference_noise(self.rng, x2.shape[0], samples, W.shape[1]).astype(mean.dtype)
        y = np.mean([self._act(mean + sd * z[:, s]) for s in range(samples)], axis=0)
        return y.reshape(lead + (W.shape[1],))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise self._no_forward()
        if self._state[0] == "gaussian":
            raise RuntimeError("DropConnect: backward() through the sampled Gaussian inference is not defined; "
                               "use inference='scale' or train mode.")
        W = self.dense.weight.value
        du = np.asarray(dy, self.dense.dtype)
        du = du if self.activation is None else self.activation.backward(du)
        x, lead = self._state[-2], self._state[-1]
        du = du.reshape(-1, W.shape[1])
        self.dense.bias.grad += du.sum(axis=0)
        if self._state[0] == "eval":
            self.dense.weight.grad += x.T @ du
            return (du @ W.T).reshape(lead + (W.shape[0],))
        _, draw, shape, _, _ = self._state
        M = draw.mask_values(shape, self.p, self.scale, W.dtype)
        if M.ndim == 2:
            self.dense.weight.grad += (x.T @ du) * M
            return (du @ (W * M).T).reshape(lead + (W.shape[0],))
        self.dense.weight.grad += np.einsum("ni,no,nio->io", x, du, M)
        return np.einsum("no,nio->ni", du, W * M).reshape(lead + (W.shape[0],))


_CONCRETE_ENGINE_DOC = """layer (Module | None): the wrapped layer (e.g. ``Dense``); its input is dropped. Default None
        (the dropout alone).
    """ + SEED_DOC + """ It also seeds the layer's initialisation when the layer was built
        without its own seed.
    init_p (float | None): deprecated alias of ``p``."""

_CONCRETE_EXAMPLE = """
>>> import numpy as np
>>> from droplab import nn
>>> layer = ConcreteDropout(nn.Dense(4, 2), p=0.2, seed=0)
>>> layer.forward(np.ones((3, 4), np.float32)).shape, round(layer.p, 6)
((3, 2), 0.2)
>>> [p.name for p in layer.parameters()]
['p_logit', 'weight', 'bias']
"""


@register_class
class ConcreteDropout(Dropout):
    __doc__ = family.get("concrete_dropout").docstring("nn", _CONCRETE_ENGINE_DOC, _CONCRETE_EXAMPLE)

    spec = family.get("concrete_dropout")

    def __init__(self, layer: Module | None = None, *, p: float = 0.1, temperature: float = 0.1,
                 weight_regularizer: float = 1e-6, dropout_regularizer: float = 1e-5, input_dim: int | None = None,
                 seed: _rng.Seed = None, init_p: float | None = None) -> None:
        where = "ConcreteDropout"
        if layer is not None and not isinstance(layer, Module):
            raise InvalidTypeError(_validate.message(where, "layer", "a droplab Module (e.g. nn.Dense) or None", layer))
        self.layer = layer
        dtype = getattr(layer, "dtype", np.dtype(np.float32))
        self.p_logit = Parameter(np.zeros(1, dtype), "p_logit")
        self._features = 0
        p = p if init_p is None else init_p
        super().__init__(p, temperature=temperature, weight_regularizer=weight_regularizer,
                         dropout_regularizer=dropout_regularizer, input_dim=input_dim, seed=seed)
        self._init_p = self.spec.check_p(where, p)

    @property
    def p(self) -> float:
        return self.spec.p_of(float(self.p_logit.value[0]))

    @p.setter
    def p(self, value: float) -> None:
        self.p_logit.value[0] = self.spec.logit_of(self.spec.check_p("ConcreteDropout", value))

    def config(self) -> dict:
        return {"p": self._init_p, **self._options}

    def children(self) -> list[Module]:
        return [self.layer] if self.layer is not None else []

    def _parameters(self) -> list[Parameter]:
        return [self.p_logit]

    def _reseed(self, ss: np.random.SeedSequence) -> None:
        mask_ss, layer_ss = self.spec.split_seed(ss)
        super()._reseed(mask_ss)
        if self.layer is not None and not self.layer._explicit_seed:
            self.layer._reseed(layer_ss)

    @property
    def input_dim(self) -> int:
        """``D`` of the dropout term: the option, else the layer's ``in_features``, else the
        features per row of the last training input (0 before one)."""
        d = self._options["input_dim"]
        return d if d is not None else getattr(self.layer, "in_features", None) or self._features

    def _layer_params(self) -> list[Parameter]:
        return self.layer.parameters() if self.layer is not None else []

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_input("ConcreteDropout", x)
        if self.training:
            self._features = int(math.prod(x.shape[1:])) if x.ndim > 1 else int(x.shape[0]) if x.ndim else 1
            draw = self.rng.next()
            noise, _ = self.spec.relaxed(float(self.p_logit.value[0]), self.temperature, draw, x.shape)
            self._state = ("train", draw, x)
            work = np.float64 if x.dtype == np.float64 else np.float32
            h = (x.astype(work, copy=False) * noise.astype(work)).astype(x.dtype, copy=False)
        else:
            self._state = ("eval",)
            h = x
        return h if self.layer is None else self.layer.forward(h)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise self._no_forward()
        g = np.asarray(dy) if self.layer is None else self.layer.backward(dy)
        logit, t = float(self.p_logit.value[0]), self.temperature
        if self._state[0] == "train":  # the noise regenerated, shared by dx and dp_logit
            _, draw, x = self._state
            noise, s = self.spec.relaxed(logit, t, draw, x.shape)
            work = np.float64 if g.dtype == np.float64 else np.float32
            dx = (g.astype(work, copy=False) * noise.astype(work)).astype(g.dtype, copy=False)
            self.p_logit.grad += self.spec.logit_grad(g, x, noise, s, logit, t)
        else:
            dx = g
        if not self._tape_calls:  # the regulariser's gradients once per pass, as Dense's penalty
            params = self._layer_params()
            sq = sum(float(np.sum(q.value * q.value)) for q in params)
            self.p_logit.grad += self.spec.penalty_logit_grad(logit, sq, self.input_dim, self.weight_regularizer,
                                                              self.dropout_regularizer)
            p = self.p
            for q in params:
                q.grad += (2 * self.weight_regularizer / (1 - p)) * q.value
        return dx

    def _penalty(self) -> float:
        sq = sum(float(np.sum(q.value * q.value)) for q in self._layer_params())
        return self.spec.penalty(float(self.p_logit.value[0]), sq, self.input_dim, self.weight_regularizer,
                                 self.dropout_regularizer)
