"""Rate schedules for any dropout variant, and the max-norm constraint, as ``fit`` callbacks.

A schedule sets ``layer.p`` of the dropout layers at the start of every epoch
(``on_epoch_begin``); the setter validates it, so a schedule cannot give GaussianDropout
``p = 1``. ``MaxNorm`` clips weight vectors after every optimizer step (``on_batch_end``).

Example:
    >>> import numpy as np
    >>> from droplab import nn
    >>> model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Dense(8, 2), seed=0)
    >>> ramp = LinearRamp(0.0, 0.3, epochs=3)
    >>> [ramp.rate(e) for e in range(5)]
    [0.0, 0.15, 0.3, 0.3, 0.3]
    >>> h = model.fit(np.zeros((6, 4)), np.zeros(6, int), loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1),
    ...               epochs=2, verbose=False, callbacks=[ramp, MaxNorm(3.0)])
    >>> model[2].p, bool((np.linalg.norm(model[0].weight.value, axis=0) <= 3.0 + 1e-6).all())
    (0.15, True)
"""

from __future__ import annotations

from collections.abc import Sequence

from droplab.errors import InvalidTypeError, InvalidValueError
import numpy as np

from droplab import _validate
from droplab.nn.module import Module, Parameter

__all__ = ["RateSchedule", "ConstantRate", "LinearRamp", "EarlyDropout", "MaxNorm", "max_norm_"]


class RateSchedule:
    """Base of the schedules: ``rate(epoch)`` -> ``p``, applied to the dropout layers.

    Args:
        layers (Sequence[Module] | None): the layers to set; None (default) means every module
            of the model with ``is_dropout`` whose ``p`` is a plain rate (ConcreteDropout, which
            learns its ``p``, is left alone).
    """

    def __init__(self, layers: Sequence[Module] | None = None) -> None:
        if layers is not None:
            layers = list(layers)
            for i, layer in enumerate(layers):
                if not getattr(layer, "is_dropout", False):
                    raise InvalidTypeError(_validate.message(type(self).__name__, "layers",
                                                      "dropout-family layers", f"layer {i}={layer!r}"))
        self.layers = layers

    def rate(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def targets(self, model: Module) -> list[Module]:
        if self.layers is not None:
            return self.layers
        from droplab.nn.family import ConcreteDropout

        return [m for m in model.modules() if m.is_dropout and not isinstance(m, ConcreteDropout)]

    def on_epoch_begin(self, epoch: int, model: Module) -> None:
        p = self.rate(epoch)
        for layer in self.targets(model):
            layer.p = p


class ConstantRate(RateSchedule):
    """``p`` at every epoch (the default behaviour, made explicit; resets a changed ``p``).

    Args:
        p (float): drop probability (not the keep probability), in [0, 1].
        layers: see :class:`RateSchedule`.
    """

    def __init__(self, p: float, layers: Sequence[Module] | None = None) -> None:
        super().__init__(layers)
        self.p = _validate.probability("ConstantRate", "p", p)

    def rate(self, epoch: int) -> float:
        return self.p


class LinearRamp(RateSchedule):
    """``p`` moves linearly from ``start`` (epoch 0) to ``stop`` (epoch ``epochs - 1``), then stays.

    DropBlock's schedule (Ghiasi et al. 2018, section 3) ramps the KEEP probability from 1 down
    to its target; in droplab's terms that is ``LinearRamp(0.0, p, epochs)``.

    Args:
        start, stop (float): drop probabilities in [0, 1].
        epochs (int): length of the ramp in epochs, >= 1.
        layers: see :class:`RateSchedule`.
    """

    def __init__(self, start: float, stop: float, epochs: int, layers: Sequence[Module] | None = None) -> None:
        super().__init__(layers)
        self.start = _validate.probability("LinearRamp", "start", start)
        self.stop = _validate.probability("LinearRamp", "stop", stop)
        self.epochs = _validate.positive_int("LinearRamp", "epochs", epochs)

    def rate(self, epoch: int) -> float:
        if self.epochs == 1 or epoch >= self.epochs - 1:
            return self.stop
        return self.start + (self.stop - self.start) * epoch / (self.epochs - 1)


class EarlyDropout(RateSchedule):
    """Dropout ``p`` for the first ``epochs`` epochs, then 0 ("early dropout").

    Args:
        p (float): drop probability (not the keep probability) while on, in [0, 1].
        epochs (int): how many epochs dropout stays on, >= 0.
        layers: see :class:`RateSchedule`.

    Reference:
        Liu, Xu, Jin, Shen, Darrell et al., "Dropout Reduces Underfitting", ICML 2023.
    """

    def __init__(self, p: float, epochs: int, layers: Sequence[Module] | None = None) -> None:
        super().__init__(layers)
        self.p = _validate.probability("EarlyDropout", "p", p)
        self.epochs = _validate.nonnegative_int("EarlyDropout", "epochs", epochs)

    def rate(self, epoch: int) -> float:
        return self.p if epoch < self.epochs else 0.0


def max_norm_(w: np.ndarray, max_norm: float, axis=0) -> np.ndarray:
    """Rescale, in place, every vector of ``w`` along ``axis`` whose L2 norm exceeds ``max_norm``."""
    norms = np.sqrt(np.sum(w * w, axis=axis, keepdims=True))
    w *= np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(w.dtype).tiny)).astype(w.dtype)
    return w


class MaxNorm:
    """Max-norm constraint: after each optimizer step, every unit's incoming weight vector is
    projected onto the ball ``||w|| <= max_norm`` (Srivastava et al. 2014, section 5.1, who pair
    it with dropout and a large learning rate).

    Args:
        max_norm (float): the radius ``c``, > 0 (the paper used 3 to 4).
        axis (int | tuple[int, ...]): the axes of one unit's vector. Default 0: a ``Dense``
            weight is ``(in, out)``, so column ``j`` is unit ``j``'s incoming weights.
        params (Sequence[Parameter] | None): the weights to constrain; None (default) means
            every 2-D parameter named ``"weight"`` in the model (Dense, DropConnect).

    Example:
        >>> import numpy as np
        >>> from droplab import nn
        >>> layer = nn.Dense(3, 2, seed=0)
        >>> layer.weight.value[...] = 10
        >>> MaxNorm(1.0).on_batch_end(0, layer)
        >>> np.linalg.norm(layer.weight.value, axis=0).round(6).tolist()
        [1.0, 1.0]
    """

    def __init__(self, max_norm: float, axis=0, params: Sequence[Parameter] | None = None) -> None:
        self.max_norm = _validate.positive_float("MaxNorm", "max_norm", max_norm)
        try:
            self.axis = _validate.axes("MaxNorm", axis)
        except (TypeError, ValueError):
            self.axis = None
        if self.axis is None:
            raise InvalidTypeError(_validate.message("MaxNorm", "axis", "an int or a tuple of distinct ints", axis))
        if params is not None:
            params = list(params)
            for i, p in enumerate(params):
                if not isinstance(p, Parameter):
                    raise InvalidTypeError(_validate.message("MaxNorm", "params", "droplab Parameters", f"item {i}={p!r}"))
        self.params = params

    def targets(self, model: Module) -> list[Parameter]:
        if self.params is not None:
            return self.params
        return [p for p in model.parameters() if p.name == "weight" and p.value.ndim == 2]

    def on_batch_end(self, step: int, model: Module) -> None:
        for p in self.targets(model):
            if any(not -p.value.ndim <= a < p.value.ndim for a in self.axis):
                raise InvalidValueError(_validate.message("MaxNorm", "axis", f"axes of the {p.value.ndim}-D weight "
                                                   f"{p.value.shape}", self.axis))
            max_norm_(p.value, self.max_norm, self.axis)
