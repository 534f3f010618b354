"""What the doctor expects of a subject, read from the dropout family's registry.

Every contract answer (what ``p`` means and its legal values, the noise shape and the rank
rule, the scale of kept values, evaluation, whether rows draw independent noise) comes from
the subject's spec in :mod:`droplab.family`: a ``droplab.nn`` or ``droplab.torch`` variant is
checked against its own spec, PyTorch's modules against the spec of the variant they are
(:data:`TORCH_BUILTINS`), and a user's code against ``Dropout``'s (inverted or classic), or
the variant named with ``spec=``.

The one thing the registry does not say, and the doctor must, is which statistical LAW the
noise follows, i.e. which measurements test it (:data:`LAWS`): a Bernoulli mask times a scale,
multiplicative Gaussian noise with mean 1 and variance ``p/(1-p)``, Alpha dropout's affine
map, DropBlock's blocks renormalised over the batch, DropConnect's mask on weights, or
Concrete dropout's relaxed mask. A registered variant not listed is tested as a Bernoulli mask
when its spec says ``bernoulli``, else by the law-free checks only (eval, edges, dtype,
mutation, fresh noise, backward), and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from droplab import _validate, family
from droplab.errors import InvalidValueError

__all__ = ["Expect", "LAWS", "TORCH_BUILTINS", "expect_for", "spec_of_module", "channel_rank"]

#: registry name -> the law the doctor measures
LAWS: dict[str, str] = {
    "dropout": "bernoulli", "dropout1d": "bernoulli", "dropout2d": "bernoulli", "dropout3d": "bernoulli",
    "drop_path": "bernoulli", "locked_dropout": "bernoulli", "gaussian_dropout": "gaussian",
    "alpha_dropout": "alpha", "drop_block2d": "block", "drop_connect": "weights", "concrete_dropout": "concrete",
}

#: PyTorch's own modules -> the registry variant each one is
TORCH_BUILTINS: dict[str, str] = {"Dropout": "dropout", "Dropout1d": "dropout1d", "Dropout2d": "dropout2d",
                                  "Dropout3d": "dropout3d", "AlphaDropout": "alpha_dropout"}

# test inputs per layout: enough independent units per call (>= 4096) for 5-sigma tests to bite
_SHAPES = {"(*)": (64, 256), "(N, C, L)": (128, 32, 4), "(N, C, H, W)": (64, 64, 2, 2),
           "(N, C, D, H, W)": (64, 64, 2, 1, 2), "(N, *)": (4096, 4), "(N, T, F)": (64, 4, 64)}
_BLOCK_SHAPE = (8, 8, 16, 16)
#: DropConnect's test layer: in_features, out_features
CONNECT_SIZES = (64, 32)


@dataclass
class Expect:
    """The contract a subject is held to: its registry spec with its options, and the law."""

    spec: family.Spec
    options: dict[str, Any]
    law: str
    source: str
    #: user code: accept the classic form (unscaled training, ``1 - p`` in evaluation) as well
    allow_classic: bool = False
    shape: tuple[int, ...] = field(default=(64, 256))

    @property
    def name(self) -> str:
        return self.spec.name

    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The spec's noise shape for an input of ``shape`` (raises for a rank it refuses)."""
        return tuple(self.spec.noise_shape("doctor", self.options, tuple(shape)))

    @property
    def rows_independent(self) -> bool:
        return bool(self.spec.rows_independent(self.options))

    def scale(self, p: float) -> float:
        return float(self.spec.scale(self.options, p))

    def eval_factor(self, p: float) -> float:
        return float(self.spec.eval_factor(self.options, p))

    @property
    def p_zero(self) -> bool:
        return bool(self.spec.p_zero)

    @property
    def p_one(self) -> bool:
        return bool(self.spec.p_one)

    def legal(self, p: float) -> bool:
        return (p > 0 or self.p_zero) and (p < 1 or self.p_one)


def _options(spec: family.Spec, obj) -> dict[str, Any]:
    """The spec's options with an instance's values (``config()``) where it has them."""
    opts = {o.name: o.default for o in spec.options}
    cfg = {}
    if not isinstance(obj, type) and callable(getattr(obj, "config", None)):
        try:
            cfg = dict(obj.config())
        except Exception:  # noqa: BLE001 - a config that fails leaves the defaults
            cfg = {}
    opts.update({k: v for k, v in cfg.items() if k in opts})
    return opts


def spec_of_module(obj) -> tuple[family.Spec, dict[str, Any]] | None:
    """``(spec, options)`` of a droplab layer or PyTorch dropout module (instance or class), else None."""
    cls = obj if isinstance(obj, type) else type(obj)
    spec = getattr(cls, "spec", None)
    if isinstance(spec, family.Spec) and cls.__module__.startswith("droplab."):
        return spec, _options(spec, obj)
    if cls.__module__.startswith("torch.nn") and cls.__name__ in TORCH_BUILTINS:
        spec = family.get(TORCH_BUILTINS[cls.__name__])
        return spec, {o.name: o.default for o in spec.options}
    return None


def channel_rank(spec: family.Spec, options: dict[str, Any]) -> int | None:
    """The one input rank a shape-checked variant accepts (channel dropout, DropBlock, locked
    dropout), found by asking its spec's rank rule; None where any rank >= 1 is accepted."""
    ok = []
    for rank in range(1, 7):
        try:
            spec.noise_shape("doctor", options, (2,) * rank)
            ok.append(rank)
        except ValueError:
            continue
    return ok[0] if len(ok) == 1 else None


def _test_shape(spec: family.Spec, law: str) -> tuple[int, ...]:
    if law == "block":
        return _BLOCK_SHAPE
    if spec.layout in _SHAPES:
        return _SHAPES[spec.layout]
    rank = spec.layout.count(",") + 1
    return (64, 64) + (2,) * max(rank - 2, 0)


def expect_for(obj, spec_name: str | None = None) -> Expect:
    """The :class:`Expect` for ``obj``: its own spec (droplab and PyTorch modules), the variant
    named by ``spec_name``, or Dropout's contract for user code (inverted or classic)."""
    found = spec_of_module(obj)
    if spec_name is not None:
        spec = family.get(spec_name)
        opts = found[1] if found is not None and found[0] is spec else {o.name: o.default for o in spec.options}
        source = f"the registry's {spec.class_name} (asked for)"
        classic = spec.name == "dropout"
    elif found is not None:
        spec, opts = found
        cls = obj if isinstance(obj, type) else type(obj)
        source = (f"the registry's {spec.class_name}" if cls.__module__.startswith("droplab.")
                  else f"the registry's {spec.class_name} (PyTorch's {cls.__name__} is that variant)")
        classic = False
    else:
        spec, opts = family.get("dropout"), {o.name: o.default for o in family.get("dropout").options}
        source = "the registry's Dropout (inverted, or classic: unscaled training and 1 - p in evaluation)"
        classic = True
    law = LAWS.get(spec.name) or ("bernoulli" if spec.bernoulli and spec.kind == "noise" else "other")
    return Expect(spec, opts, law, source, allow_classic=classic, shape=_test_shape(spec, law))


def check_spec_name(name: str) -> str:
    """``name`` if it is a registered variant, else the one-line error."""
    try:
        return family.get(name).name
    except ValueError:
        names = sorted({s.name for s in family.specs()})
        raise InvalidValueError(_validate.message("doctor", "spec", "a registered variant: " + ", ".join(names),
                                                  name)) from None
