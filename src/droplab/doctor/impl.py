"""``check_impl``: a user's dropout implementation against dropout's contract.

The doctor runs the implementation on seeded inputs (values of magnitude in [0.5, 1.5) with
random signs, so that a dropped element is exactly 0 and every kept one is not) and measures:

* the realised drop rate at p = 0.1, 0.5 and 0.8, over ``n`` independent units (the elements of
  the spec's noise shape, times the calls), accepted within ``5 sqrt(p (1 - p) / n)``; a rate
  outside it that matches ``1 - Phi(1 - p)`` (a ``randn`` mask) or ``1 - p`` (keep and drop
  probabilities mixed up) is named as that bug;
* kept values: ``x / (1 - p)`` within two roundings (``|y - x/(1-p)| <= eps |x/(1-p)|``: the
  scale rounded once and the product once, as PyTorch's ``x * fl(1/(1-p))`` or a division by a
  rounded keep probability), and the training factor against evaluation's: inverted (``1/(1-p)``
  in training, identity in evaluation) or classic (1 in training, ``1 - p`` in evaluation);
* ``E[y] = `` the evaluation output, within ``5 sqrt(Var / n)``;
* evaluation and p = 0 are the identity (bitwise); p = 1 is finite (zeros);
* the dtype is kept (float32 and float64 inputs); the input is not changed in place;
* each call draws a fresh mask; backward applies forward's mask and scale;
* units are independent where the spec says they are: across the batch, and across every
  other axis the noise is drawn along (sample correlation of neighbouring units: ``|r| <= 5 /
  sqrt(m)`` over ``m`` pairs); constant along the axes the spec shares.

Gaussian dropout is held to mean 1 and variance ``p/(1-p)`` (bound ``5 sigma^2 sqrt(2/(n-1))``
for the sample variance of normal draws); Alpha dropout to its affine map (Klambauer et al.
2017) and rate; DropBlock to its blocks, the registry's expected dropped fraction (variance
of one map's fraction computed exactly from the block coverage) and its batch renormalisation;
DropConnect to a mask on the weights; Concrete dropout to ``P(relaxed indicator > 1/2) = p``.
Each statistical test fails a correct implementation with probability 5.7e-7; a run of ``k``
tests (``Report.tests``) with probability at most ``k * 5.7e-7``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from droplab import family
from droplab.doctor import _stats
from droplab.doctor._report import Finding, Report
from droplab.doctor._restore import global_rngs
from droplab.doctor._specs import CONNECT_SIZES, Expect, check_spec_name, expect_for
from droplab.doctor._subject import Subject, UserError, make_subject

__all__ = ["check_impl", "P_VALUES"]

#: the drop probabilities the rates are measured at (p = 0.5 alone cannot tell a keep/drop mix-up)
P_VALUES = (0.1, 0.5, 0.8)
#: independent units per p the rate tests aim for
UNITS = 16384
_FIX_RANDN = "draw the mask from a UNIFORM variable: keep = rng.random(shape) >= p (or torch.rand), not randn"
_FIX_MIXUP = "p is the probability of DROPPING: keep = 1 - p; mask = rng.random(shape) >= p"
_FIX_SCALE = "scale kept values by 1/(1 - p) in training (inverted dropout) and return x unchanged in evaluation"


def check_impl(obj: Any, *, p_means: str = "drop", spec: str | None = None, seed: int = 0,
               name: str | None = None) -> Report:
    """Test a dropout implementation against dropout's contract; returns a :class:`Report`.

    Args:
        obj: a function ``f(x, p)`` / ``f(x, p, training)`` (NumPy or torch); a
            ``torch.nn.Module`` class taking ``p`` (or an instance); a NumPy layer class in the
            NNFS style (``forward(inputs[, training])`` sets ``self.output``, ``backward(dvalues)``
            sets ``self.dinputs``) or a ``droplab.nn`` layer class (or an instance).
        p_means (str): ``"drop"`` (default): the doctor passes ``p``, the probability that an
            element is zeroed (not the keep probability); ``"keep"``: it passes ``1 - p``.
        spec (str | None): hold user code to this registered variant (e.g. ``"dropout2d"``)
            instead of ``Dropout``'s contract. droplab and PyTorch modules use their own spec.
        seed (int): seeds the inputs and the global NumPy, torch and ``random`` generators while
            the doctor runs (all restored afterwards).
        name (str | None): how to call the subject in the report.

    Returns:
        Report: findings ranked by severity, the measurements, and the number of statistical
        tests (each at 5 sigma).

    Raises:
        TypeError: ``obj`` is none of the accepted kinds.
        ValueError: an unknown ``p_means`` or ``spec``.

    Example:
        >>> import numpy as np
        >>> def dropout(x, p):              # the keep and drop probabilities mixed up
        ...     return x * (np.random.rand(*x.shape) < p) / p
        >>> report = check_impl(dropout, seed=0)
        >>> report.codes()[0]
        'keep-drop-mixup'
    """
    if spec is not None:
        spec = check_spec_name(spec)
    subject = make_subject(obj, p_means=p_means, seed=seed, name=name)
    expect = expect_for(obj, spec)
    report = Report(subject.name, "impl")
    report.notes.append(f"held to {expect.source}; law: {expect.law}; p passed as the "
                        f"{'keep' if subject.p_means == 'keep' else 'drop'} probability")
    with global_rngs(seed):
        _ImplDoctor(subject, expect, report, seed).run()
    return report


def _raised(report: Report, err: UserError, where: str, fix: str = "") -> None:
    report.add(Finding("raised", "error", where, f"the code {err.text()}", fix=fix or
                       "make it accept this input (see the measurement's input and p)"))


class _ImplDoctor:
    def __init__(self, subject: Subject, expect: Expect, report: Report, seed: int) -> None:
        self.s, self.e, self.r = subject, expect, report
        self.rng = np.random.default_rng([seed, 0x0D0C])
        self.mutated = False
        self.factor: dict[float, float] = {}  # measured training factor on kept values, per p
        self.first_ys: dict[float, list[np.ndarray]] = {}
        self.first_x: dict[float, np.ndarray] = {}
        self._runner_inst = None

    # -- inputs -------------------------------------------------------------------------------
    def x(self, shape=None, dtype=np.float32) -> np.ndarray:
        shape = self.e.shape if shape is None else shape
        mag = self.rng.uniform(0.5, 1.5, shape)
        sign = np.where(self.rng.random(shape) < 0.5, -1.0, 1.0)
        return (mag * sign).astype(dtype)

    def connect_x(self, dtype=np.float32) -> np.ndarray:
        return np.eye(CONNECT_SIZES[0], dtype=dtype)

    def input(self, dtype=np.float32) -> np.ndarray:
        return self.connect_x(dtype) if self.e.law == "weights" else self.x(dtype=dtype)

    def runner(self, p: float):
        r = self.s.at(p)
        self._runner_inst = getattr(r, "layer", None) or getattr(r, "module", None)
        return r

    def forward(self, runner, x, training=True) -> np.ndarray:
        y = runner.forward(x, training)
        self.mutated |= runner.mutated
        return y

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> None:
        if self.e.law == "weights":
            self.s.leading = CONNECT_SIZES
        x = self.input()
        try:
            self.s.probe(x, 0.5)
        except UserError as err:
            _raised(self.r, err, "p=0.5")
            return
        for step in (self.rates, self.evaluation, self.edges, self.dtypes, self.fresh, self.backward,
                     self.independence):
            try:
                step()
            except UserError as err:
                _raised(self.r, err, step.__name__)
        if any(f.code in ("batch-shared-mask", "mask-correlated") for f in self.r.findings):
            # the rate's bound assumed independent units, which they are not: the rate says nothing more
            self.r.findings = [f for f in self.r.findings if f.code != "drop-rate"]
        if self.mutated:
            self.r.add(Finding("mutates-input", "error", "forward", "the input array was changed in place",
                               "x changed", "x unchanged", "compute y = x * mask (a new array); never x *= mask"))
        self.r.check("input not mutated", "all calls", not self.mutated, True, not self.mutated)

    # -- units of the noise -------------------------------------------------------------------------
    def shared_axes(self, shape) -> list[int]:
        ns = self.e.noise_shape(shape)
        return [i for i, (a, b) in enumerate(zip(ns, shape)) if a == 1 and b > 1]

    def units(self, values: np.ndarray, exact: bool = True) -> tuple[np.ndarray, bool]:
        """``values`` (one per element) reduced to one per unit of the noise shape, and whether
        they are constant along the spec's shared axes."""
        axes = self.shared_axes(values.shape)
        first = values
        for a in axes:
            first = np.take(first, [0], axis=a)
        if exact:
            const = bool(np.all(values == first))
        else:
            const = bool(np.all(np.abs(values - first) <= 8 * np.finfo(np.float32).eps * np.abs(first) + 1e-30))
        return first, const

    # -- rates and scale ------------------------------------------------------------------------------
    def rates(self) -> None:
        law = self.e.law
        rows = []
        for p in P_VALUES:
            if not self.e.legal(p):
                continue
            runner = self.runner(p)
            x = self.input()
            y0 = self.forward(runner, x)
            want = (x.shape[0], CONNECT_SIZES[1]) if law == "weights" else x.shape
            if y0.shape != want:
                self.r.add(Finding("shape", "error", f"p={p:g}", "the output's shape differs from the input's",
                                   str(y0.shape), str(want), "return an array of the input's shape"))
                return
            per_call = max(1, int(np.prod(self.units_shape(x, y0))))
            calls = int(min(64, max(2, math.ceil(UNITS / per_call))))
            ys = [y0] + [self.forward(runner, x) for _ in range(calls - 1)]
            self.first_ys[p] = ys[:2]
            self.first_x[p] = x
            rows.append(self.measure(p, x, ys))
        if law in ("bernoulli", "alpha", "block", "weights", "concrete"):
            self.rate_finding([r for r in rows if r])
        if law in ("bernoulli", "block", "weights"):
            self.scale_finding([r for r in rows if r])

    def units_shape(self, x, y) -> tuple[int, ...]:
        if self.e.law == "weights":
            return CONNECT_SIZES
        if self.e.law == "block":
            return x.shape[:2]
        return self.e.noise_shape(x.shape)

    def measure(self, p: float, x: np.ndarray, ys: list[np.ndarray]) -> dict | None:
        measure = getattr(self, f"measure_{self.e.law}", None)  # one method per noise law
        return measure(p, x, ys) if measure is not None else None

    def shape_finding(self, p: float, const: bool) -> None:
        if not const:
            ns = self.e.noise_shape(self.e.shape)
            self.r.add(Finding("mask-shape", "error", f"p={p:g}",
                               f"the noise is not shared along axes {self.shared_axes(self.e.shape)} as "
                               f"{self.e.spec.class_name}'s noise shape {ns} says",
                               "different values along a shared axis", f"one value per unit of {ns}",
                               "draw the mask at the noise shape and broadcast it"))

    def kept_ulps(self, x: np.ndarray, y: np.ndarray, kept: np.ndarray, factor: float) -> float:
        """Largest ``|y - x*factor|`` over kept elements, in units of ``eps * |x*factor|`` of the
        input's dtype: <= 1 is within two roundings (the scale's and the product's)."""
        if not kept.any():
            return 0.0
        exact = x[kept].astype(np.float64) * factor
        eps = np.finfo(x.dtype).eps
        err = np.abs(y[kept].astype(np.float64) - exact) / (eps * np.abs(exact) + np.finfo(x.dtype).tiny)
        return float(err.max())

    def measure_bernoulli(self, p, x, ys) -> dict:
        kept_units, n, const = [], 0, True
        ratios = []
        for y in ys:
            kept = y != 0
            u, c = self.units(kept)
            const &= c
            kept_units.append(u)
            if kept.any():
                ratios.append((y[kept].astype(np.float64) / x[kept].astype(np.float64)))
        self.shape_finding(p, const)
        ku = np.concatenate([u.ravel() for u in kept_units])
        n = ku.size
        rate = 1.0 - float(ku.mean())
        ratio = np.concatenate(ratios) if ratios else np.array([0.0])
        factor = float(np.median(ratio))
        spread = float(ratio.max() - ratio.min()) / max(abs(factor), 1e-30)
        self.factor[p] = factor
        ulp = max(self.kept_ulps(x, y.astype(x.dtype, copy=False), y != 0, factor_ref)
                  for y in ys for factor_ref in [self.expected_factor(p, factor)])
        bound = _stats.rate_bound(p, n)
        self.r.tests += 1
        self.r.check("drop rate", f"p={p:g}", round(rate, 6), f"{p:g} ± {bound:.2g}", abs(rate - p) <= bound, n=n)
        # E[y]/x over the same units (not a separate test): each unit is factor or 0, var factor^2 p (1 - p)
        mean = float(ku.mean()) * factor
        e_mean = self.expected_factor(p, factor) * (1.0 - p)
        mb = _stats.mean_bound(factor * factor * p * (1.0 - p), n)
        self.r.check("mean of y/x", f"p={p:g}", round(mean, 6), f"{e_mean:.6g} ± {mb:.2g}", abs(mean - e_mean) <= mb,
                     n=n)
        return {"p": p, "rate": rate, "n": n, "bound": bound, "factor": factor, "spread": spread, "ulp": ulp}

    def expected_factor(self, p: float, measured: float) -> float:
        """The training factor the spec asks for (user code: the inverted or the classic one,
        whichever the measurement is nearer)."""
        s = self.e.scale(p)
        if self.e.allow_classic and abs(measured - 1.0) < abs(measured - s):
            return 1.0
        return s

    def rate_finding(self, rows: list[dict]) -> None:
        bad = [r for r in rows if abs(r["rate"] - self.expected_rate(r)) > r["bound"]]
        if not bad:
            return
        measured = ", ".join(f"{r['rate']:.3f} at p={r['p']:g}" for r in bad)
        expected = ", ".join(f"{self.expected_rate(r):.3g} ± {r['bound']:.2g}" for r in bad)

        def matches(fn):
            return all(abs(r["rate"] - fn(r["p"])) <= _stats.rate_bound(fn(r["p"]), r["n"]) for r in bad)

        if self.e.law == "bernoulli" and matches(_stats.randn_rate):
            self.r.add(Finding("randn-mask", "error", "training", "the mask is drawn from a normal (randn) where a "
                               "uniform (rand) draw is meant: the drop rate is 1 - Phi(1 - p)", measured,
                               expected + "; randn's 1 - Phi(1 - p) = " + ", ".join(
                                   f"{_stats.randn_rate(r['p']):.3f}" for r in bad),
                               _FIX_RANDN, bug="randn mask"))
        elif matches(_stats.mixup_rate):
            self.r.add(Finding("keep-drop-mixup", "error", "training", "the keep probability is used where the drop "
                               "probability is meant: the drop rate is 1 - p", measured, expected,
                               _FIX_MIXUP if self.s.p_means == "drop" else
                               "the code treats p as the drop probability: run without --p-means keep",
                               bug="keep/drop mix-up"))
        else:
            self.r.add(Finding("drop-rate", "error", "training", "the realised drop rate is not p", measured, expected,
                               "drop each unit independently with probability p: mask = rng.random(shape) >= p"))

    def expected_rate(self, r: dict) -> float:
        return r.get("expected_rate", r["p"])

    def scale_finding(self, rows: list[dict]) -> None:
        """Kept values: the factor (inverted or classic, against evaluation's) and its exactness."""
        if self.e.law != "bernoulli":
            bad = [r for r in rows if r["ulp"] > 1.0]
            if bad:
                r = bad[0]
                self.r.add(Finding("kept-values", "error", f"p={r['p']:g}", "kept values are not the spec's "
                                   "scaled input", f"{r['ulp']:.3g} eps off", "<= 1 eps (two roundings)",
                                   "multiply kept values by the spec's factor"))
            return
        for r in rows:
            p, f = r["p"], r["factor"]
            s = self.e.scale(p)
            self.r.check("kept factor", f"p={p:g}", round(f, 7), f"{s:.7g}" + (" or 1 (classic)" if
                                                                               self.e.allow_classic else ""),
                         abs(f - s) <= 1e-6 * s or (self.e.allow_classic and f == 1.0), ulp=round(r["ulp"], 3))
        if not rows:
            return
        mid = next((r for r in rows if r["p"] == 0.5), rows[0])
        self.train_factor = (mid["p"], mid["factor"])
        near = (lambda a, b: abs(a - b) <= 1e-3 * max(abs(b), 1e-12))
        classic = self.e.allow_classic and all(near(r["factor"], 1.0) for r in rows)
        for r in rows:
            p, f = r["p"], r["factor"]
            s = 1.0 if classic else self.e.scale(p)
            if near(f, s):
                continue
            if near(f, 1.0 / p):
                mixup = next((x for x in self.r.findings if x.code == "keep-drop-mixup"), None)
                if mixup is not None:  # one cause, one line
                    mixup.what += "; kept values are also scaled by 1/p instead of 1/(1 - p)"
                    return
                self.r.add(Finding("scale-mixup", "error", f"p={p:g}", "kept values are divided by p, not by 1 - p "
                                   "(keep and drop mixed up in the scale)", f"factor {f:.4g}", f"{s:.4g}",
                                   "scale by 1/(1 - p): p is the probability of dropping", bug="keep/drop mix-up"))
            elif near(f, 1.0 - p):
                self.r.add(Finding("train-scaled-by-keep", "error", f"p={p:g}", "kept values are multiplied by 1 - p "
                                   "in training (test-time weight scaling applied at train time)", f"factor {f:.4g}",
                                   f"{s:.4g}", _FIX_SCALE))
            elif near(f, 1.0):
                return  # unscaled training against an inverted spec: reported with evaluation (train/eval mismatch)
            else:
                self.r.add(Finding("kept-factor", "error", f"p={p:g}", f"kept values are multiplied by {f:.4g}, not "
                                   f"by 1/(1 - p) = {s:.4g}", f"factor {f:.4g}", f"{s:.4g}", _FIX_SCALE))
            return
        bad = [q for q in rows if q["ulp"] > 1.0 or q["spread"] > 4 * np.finfo(np.float32).eps]
        if bad:
            q = bad[0]
            self.r.add(Finding("kept-values", "error", f"p={q['p']:g}", "kept values are not x/(1 - p) to "
                               "within two roundings", f"up to {q['ulp']:.3g} eps off x/(1-p)",
                               "<= 1 eps (the scale rounded once, the product once)",
                               "multiply by one scale s = 1/(1 - p) computed once (not a per-element "
                               "division by a float32 keep, not a float16 scale)"))

    def measure_gaussian(self, p, x, ys) -> dict:
        us, const = [], True
        for y in ys:
            u, c = self.units(y.astype(np.float64) / x.astype(np.float64), exact=False)
            const &= c
            us.append(u.ravel())
        self.shape_finding(p, const)
        u = np.concatenate(us)
        n = u.size
        var_expected = p / (1.0 - p)
        mean, var = float(u.mean()), float(u.var(ddof=1))
        mb, vb = _stats.mean_bound(var_expected, n), _stats.var_bound(var_expected, n)
        self.r.tests += 2
        ok_m = self.r.check("mean of y/x", f"p={p:g}", round(mean, 5), f"1 ± {mb:.2g}", abs(mean - 1.0) <= mb, n=n)
        ok_v = self.r.check("variance of y/x", f"p={p:g}", round(var, 5), f"{var_expected:.4g} ± {vb:.2g}",
                            abs(var - var_expected) <= vb, n=n)
        if not ok_m:
            self.r.add(Finding("gaussian-mean", "error", f"p={p:g}", "the multiplicative noise's mean is not 1, so "
                               "E[y] != x", f"{mean:.4f}", f"1 ± {mb:.2g}", "use y = x * (1 + sqrt(p/(1-p)) * z)"))
        if not ok_v:
            self.r.add(Finding("gaussian-variance", "error", f"p={p:g}", "the noise's variance is not p/(1 - p) "
                               "(Bernoulli dropout's)", f"{var:.4f}", f"{var_expected:.4f} ± {vb:.2g}",
                               "use standard deviation sqrt(p/(1-p)), not p/(1-p) or sqrt(p)"))
        return {"p": p, "mean": mean, "var": var, "n": n}

    def measure_alpha(self, p, x, ys) -> dict:
        a, b, fill = family.alpha_coefficients(p)
        eps = np.finfo(x.dtype).eps
        x64 = x.astype(np.float64)
        tol = 4 * eps * (np.abs(a * x64) + abs(b) + abs(fill)) + np.finfo(x.dtype).tiny
        drops, neither, const = [], 0.0, True
        for y in ys:
            y64 = y.astype(np.float64)
            kept = np.abs(y64 - (a * x64 + b)) <= tol
            dropped = np.abs(y64 - fill) <= tol
            neither = max(neither, float(np.mean(~(kept | dropped))))
            u, c = self.units(dropped)
            const &= c
            drops.append(u.ravel())
        self.shape_finding(p, const)
        d = np.concatenate(drops)
        n, rate = d.size, float(d.mean())
        bound = _stats.rate_bound(p, n)
        self.r.tests += 1
        self.r.check("drop rate", f"p={p:g}", round(rate, 6), f"{p:g} ± {bound:.2g}", abs(rate - p) <= bound, n=n)
        self.r.check("affine values", f"p={p:g}", round(neither, 6), 0.0, neither == 0.0)
        if neither:
            self.r.add(Finding("alpha-affine", "error", f"p={p:g}", "outputs are neither a*x + b (kept) nor "
                               "a*alpha' + b (dropped) of Alpha dropout", f"{neither:.3%} of elements",
                               f"none (a={a:.5g}, b={b:.5g}, dropped value {fill:.5g})",
                               "use Klambauer et al.'s a = (q + alpha'^2 q (1-q))^-1/2, b = -a (1-q) alpha'"))
        return {"p": p, "rate": rate, "n": n, "bound": bound}

    def measure_block(self, p, x, ys) -> dict:
        opts = self.e.options
        n_, c_, H, W = x.shape
        block = int(opts.get("block_size", 7))
        b = min(block, H, W)
        gamma = family.dropblock_gamma(p, H, W, block, opts.get("gamma", "exact"))
        expected = family.expected_drop_fraction(H, W, block, gamma)
        var_map = _block_fraction_variance(H, W, b, gamma)
        fracs, ulp, structure = [], 0.0, True
        for y in ys:
            dropped = y == 0
            maps = dropped[:, :1] if opts.get("shared_channels") else dropped
            if opts.get("shared_channels") and not np.all(dropped == dropped[:, :1]):
                structure = False
            fracs.append(maps.reshape(maps.shape[0] * maps.shape[1], -1).mean(axis=1))
            structure &= _blocks_only(dropped, b)
            kept = ~dropped
            if kept.any():
                s = dropped.size / kept.sum()
                ulp = max(ulp, self.kept_ulps(x, y.astype(x.dtype, copy=False), kept, s))
        f = np.concatenate(fracs)
        n, rate = f.size, float(f.mean())
        bound = _stats.mean_bound(var_map, n)
        self.r.tests += 1
        self.r.check("dropped fraction", f"p={p:g}", round(rate, 6), f"{expected:.4g} ± {bound:.2g}",
                     abs(rate - expected) <= bound, n=n)
        self.r.check("dropped regions are whole blocks", f"p={p:g}", structure, True, structure)
        if not structure:
            self.r.add(Finding("block-shape", "error", f"p={p:g}", f"dropped regions are not unions of {b}x{b} "
                               "blocks inside the map", "other shapes", f"{b}x{b} blocks",
                               "grow each seed into a block_size x block_size square"))
        return {"p": p, "rate": rate, "n": n, "bound": bound, "ulp": ulp, "factor": 1.0, "spread": 0.0,
                "expected_rate": expected}

    def measure_weights(self, p, x, ys) -> dict:
        inst = self.last_instance()
        W, bias = _connect_weights(inst)
        s = self.e.scale(p)
        eps = np.finfo(np.float32).eps
        kept_all, ulp = [], 0.0
        for y in ys:
            d = y.astype(np.float64) - bias
            kept = d != 0
            kept_all.append(kept.ravel())
            exact = W * s
            err = np.abs(d - exact)[kept] / (2 * eps * (np.abs(exact) + np.abs(bias) + 1e-30))[kept]
            ulp = max(ulp, float(err.max()) if err.size else 0.0)
        k = np.concatenate(kept_all)
        n, rate = k.size, 1.0 - float(k.mean())
        bound = _stats.rate_bound(p, n)
        self.r.tests += 1
        self.r.check("weight drop rate", f"p={p:g}", round(rate, 6), f"{p:g} ± {bound:.2g}", abs(rate - p) <= bound,
                     n=n)
        return {"p": p, "rate": rate, "n": n, "bound": bound, "ulp": ulp, "factor": s, "spread": 0.0}

    def last_instance(self):
        return self._runner_inst

    def measure_concrete(self, p, x, ys) -> dict:
        drops = []
        for y in ys:
            u = y.astype(np.float64) / x.astype(np.float64)
            drops.append((u < 0.5 / (1.0 - p)).ravel())
        d = np.concatenate(drops)
        n, rate = d.size, float(d.mean())
        bound = _stats.rate_bound(p, n)
        self.r.tests += 1
        # P(s > 1/2) = P(logit p + L > 0) = p exactly, L the logistic noise log u - log(1 - u)
        self.r.check("relaxed drop rate (s > 1/2)", f"p={p:g}", round(rate, 6), f"{p:g} ± {bound:.2g}",
                     abs(rate - p) <= bound, n=n)
        return {"p": p, "rate": rate, "n": n, "bound": bound}

    # -- evaluation --------------------------------------------------------------------------------
    def evaluation(self) -> None:
        p = 0.5
        runner = self.runner(p)
        if not runner.can_eval:
            self.r.notes.append("evaluation not checked: the code takes no training flag (f(x, p) is always "
                                "training); pass training=False where you evaluate")
            return
        x = self.input()
        y1 = self.forward(runner, x, training=False)
        y2 = self.forward(runner, x, training=False)
        if self.e.law == "weights":
            W, bias = _connect_weights(self.last_instance())
            ok = bool(np.allclose(y1, W + bias, rtol=4 * np.finfo(np.float32).eps, atol=0))
            self.r.check("eval = x @ W + b", "p=0.5", ok, True, ok)
            if not ok:
                self.r.add(Finding("eval-not-identity", "error", "eval", "evaluation does not use the mean weights",
                                   "other output", "x @ W + b", "use the unmasked weights in evaluation"))
            return
        e_spec = self.e.eval_factor(p)
        xr = x.astype(np.float64)
        random_eval = not np.array_equal(y1, y2)
        zeros = float(np.mean((y1 == 0) & (x != 0)))
        factor = float(np.median(y1.astype(np.float64) / xr))
        tf = getattr(self, "train_factor", None)
        classic = self.e.allow_classic and tf is not None and tf[1] == 1.0
        expected = (1.0 - p) if classic else e_spec
        exact = y1.dtype == x.dtype and np.array_equal(y1, x if expected == 1.0 else
                                                       (x.astype(np.float64) * expected).astype(x.dtype))
        if expected != 1.0 and not exact:  # the classic factor: within one rounding of x * (1 - p)
            exact = bool(np.all(np.abs(y1 - xr * expected) <= np.finfo(x.dtype).eps * np.abs(xr * expected)))
        self.r.check("eval output", "p=0.5", round(factor, 6), f"x * {expected:g}", exact and not random_eval)
        if random_eval or zeros > 0:
            self.r.add(Finding("eval-active", "error", "eval", "dropout is still active in evaluation mode "
                               "(outputs are zeroed or differ between two evaluation calls)",
                               f"{zeros:.1%} zeroed" + (", calls differ" if random_eval else ""), "x unchanged",
                               "return x when not training (pass training=self.training / check the flag)"))
            return
        if exact:
            if classic:
                self.r.notes.append("classic dropout: unscaled in training, x * (1 - p) in evaluation (consistent)")
            return
        if tf is not None and abs(tf[1] - 1.0) < 1e-9 and abs(factor - 1.0) < 1e-9:
            self.r.add(Finding("no-rescaling", "error", "training + eval", "no rescaling at train time and none at "
                               "test time: training sees (1 - p) x on average, evaluation x (a train/eval scale "
                               "mismatch)", "train factor 1, eval factor 1", f"train 1/(1-p) = {1 / (1 - p):g} "
                               "with eval 1, or train 1 with eval 1 - p", _FIX_SCALE,
                               bug="train/eval scale mismatch"))
        elif tf is not None and abs(tf[1] - self.e.scale(p)) < 1e-6 and abs(factor - (1 - p)) < 1e-6:
            self.r.add(Finding("double-scaling", "error", "eval", "scaled twice: by 1/(1 - p) in training and by "
                               "1 - p again in evaluation", f"eval factor {factor:g}", "1 (inverted dropout)",
                               "return x unchanged in evaluation", bug="train/eval scale mismatch"))
        else:
            self.r.add(Finding("eval-not-identity", "error", "eval", "evaluation does not return the spec's "
                               "output", f"factor {factor:.4g}", f"x * {expected:g}",
                               "return x unchanged in evaluation"))

    # -- p = 0 and p = 1 ----------------------------------------------------------------------------------
    def edges(self) -> None:
        if self.e.p_zero and self.e.law != "weights":
            x = self.input()
            y = self.forward(self.runner(0.0), x)
            same = y.shape == x.shape and np.array_equal(y, x)  # values (a changed dtype is its own finding)
            self.r.check("identity", "p=0", same, True, same)
            if not same:
                d = np.abs(y.astype(np.float64) - x) if y.shape == x.shape else np.array([np.nan])
                diff = float("nan") if np.isnan(d).any() else float(d.max())
                self.r.add(Finding("p0-not-identity", "error", "p=0", "p = 0 does not return the input unchanged",
                                   f"max |y - x| = {diff:.3g}", "0", "at p = 0 return x (nothing is dropped)"))
        if not self.e.p_one:
            return
        runner = self.runner(1.0)
        x = self.input()
        try:
            y = self.forward(runner, x)
        except UserError as err:
            if isinstance(err.exc, ValueError):
                self.r.notes.append(f"p = 1 refused with ValueError ({err.exc})")
                return
            self.r.add(Finding("p1-raises", "error", "p=1", f"the code {err.text()}", "an exception", "zeros",
                               "guard keep = 0: return zeros when p == 1 (never divide by 1 - p there)",
                               bug="division by keep = 0 at p = 1"))
            return
        finite = bool(np.all(np.isfinite(y)))
        zeros = bool(np.all(y == 0)) if self.e.law != "weights" else True
        self.r.check("finite, zeros", "p=1", "finite" if finite else "NaN/inf", "zeros", finite and zeros)
        if not finite:
            self.r.add(Finding("p1-nan", "error", "p=1", "p = 1 gives NaN or infinity (mask / keep with keep = 0)",
                               f"{float(np.mean(~np.isfinite(y))):.0%} non-finite", "zeros",
                               "return zeros when p == 1 (scale = 0 if keep == 0)", bug="NaN at p = 1"))
            return
        if not zeros:
            self.r.add(Finding("p1-not-zero", "error", "p=1", "p = 1 does not drop everything",
                               f"{float(np.mean(y != 0)):.1%} non-zero", "zeros", "at p = 1 return zeros"))
        if runner.can_backward:
            dx = runner.backward(self.x(y.shape).astype(y.dtype)) if y.shape == x.shape else None
            if dx is not None and not np.all(np.isfinite(dx)):
                self.r.add(Finding("p1-nan-grad", "error", "p=1", "backward at p = 1 gives NaN or infinity",
                                   "non-finite gradient", "zeros", "use scale = 0 when keep == 0",
                                   bug="NaN at p = 1"))

    # -- dtype ---------------------------------------------------------------------------------------------
    def dtypes(self) -> None:
        # DropConnect computes in its weights' dtype (a layer with parameters): float32 only
        for dt in (np.float32,) if self.e.law == "weights" else (np.float32, np.float64):
            runner = self.runner(0.5)
            x = self.input(dt)
            y = self.forward(runner, x)
            ok = y.dtype == np.dtype(dt)
            self.r.check("dtype kept", np.dtype(dt).name, y.dtype.name, np.dtype(dt).name, ok)
            if not ok:
                bug = "float64 mask upcasts float32 activations" if dt is np.float32 and y.dtype == np.float64 else ""
                self.r.add(Finding("dtype", "warning", f"{np.dtype(dt).name} input",
                                   f"the output's dtype is {y.dtype.name}, not the input's" +
                                   (": a float64 mask upcasts float32 activations" if bug else ""),
                                   y.dtype.name, np.dtype(dt).name,
                                   "make the mask in the input's dtype: (rng.random(x.shape) >= p).astype(x.dtype)",
                                   bug=bug))

    # -- a fresh mask per call -------------------------------------------------------------------------------
    def fresh(self) -> None:
        ys = self.first_ys.get(0.5)
        if not ys or len(ys) < 2:
            return
        same = bool(np.array_equal(ys[0], ys[1]))
        # two independent masks of n >= 4096 units at p = 0.5 coincide with probability 2^-4096
        self.r.check("fresh mask each call", "p=0.5", "same" if same else "differs", "differs", not same)
        if same:
            self.r.add(Finding("same-mask", "error", "p=0.5", "every call draws the same mask (a mask drawn once, or "
                               "a generator re-seeded in forward)", "two calls identical", "independent masks",
                               "draw a new mask at each training forward from a generator seeded once"))

    # -- backward ----------------------------------------------------------------------------------------------
    def backward(self) -> None:
        if self.e.law in ("weights",):
            self.r.notes.append("backward of DropConnect not checked (its gradient mixes weights and input)")
            return
        runner = self.runner(0.5)
        if not runner.can_backward:
            self.r.notes.append("backward not checked: the code has none (a NumPy function)")
            return
        x = self.input()
        y = self.forward(runner, x)
        dy = self.x(y.shape).astype(y.dtype)
        dx = runner.backward(dy)
        if dx is None:
            self.r.notes.append("backward not checked: no input gradient came back")
            return
        if dx.shape != x.shape:
            self.r.add(Finding("backward-shape", "error", "backward", "the input gradient's shape differs from the "
                               "input's", str(dx.shape), str(x.shape), "return dvalues * mask"))
            return
        fwd = y.astype(np.float64) / x.astype(np.float64)
        if self.e.law == "alpha":
            a, b, fill = family.alpha_coefficients(0.5)
            kept = np.abs(y.astype(np.float64) - (a * x.astype(np.float64) + b)) <= 1e-5 * (1 + abs(a * x) + abs(b))
            fwd = np.where(kept, a, 0.0)
        bwd = dx.astype(np.float64) / dy.astype(np.float64)
        mask_f, mask_b = fwd != 0, bwd != 0
        mismatch = float(np.mean(mask_f != mask_b))
        eps = np.finfo(x.dtype).eps
        both = mask_f & mask_b
        rel = float(np.max(np.abs(bwd[both] - fwd[both]) / np.abs(fwd[both]))) if both.any() else 0.0
        ok = mismatch == 0 and rel <= 4 * eps
        self.r.check("backward mask", "p=0.5", round(mismatch, 6), 0.0, mismatch == 0,
                     factor_rel_error=rel)
        if mismatch:
            self.r.add(Finding("backward-mask", "error", "backward", "backward applies a different mask than "
                               "forward (a mask drawn again in backward)", f"{mismatch:.1%} of elements differ", "0%",
                               "save forward's mask (or its seed) and apply the same one in backward"))
        elif not ok:
            self.r.add(Finding("backward-scale", "error", "backward", "backward scales the gradient differently from "
                               "forward's kept values", f"relative difference {rel:.3g}", f"<= {4 * eps:.2g}",
                               "dinputs = dvalues * mask / (1 - p), the very factor of forward"))

    # -- independence ---------------------------------------------------------------------------------------------
    def independence(self) -> None:
        if self.e.law in ("block", "weights"):
            return
        ys = self.first_ys.get(0.5)
        if not ys:
            return
        runner_x = self.first_x[0.5]
        values = []
        for y in ys:
            if self.e.law in ("bernoulli", "alpha"):
                v = (y != 0).astype(np.float64) if self.e.law == "bernoulli" else \
                    np.abs(y.astype(np.float64) - family.alpha_coefficients(0.5)[2]) > 1e-4
                u, _ = self.units(np.asarray(v, np.float64))
            else:
                u, _ = self.units(y.astype(np.float64) / runner_x.astype(np.float64), exact=False)
            values.append(u)
        ns = values[0].shape
        for axis, size in enumerate(ns):
            if size < 2 or (axis == 0 and not self.e.rows_independent):
                continue
            even = np.concatenate([np.take(v, np.arange(0, size - 1, 2), axis=axis).ravel() for v in values])
            odd = np.concatenate([np.take(v, np.arange(1, size, 2), axis=axis).ravel() for v in values])
            m = even.size
            if m < 100 or even.std() == 0 or odd.std() == 0:  # too few pairs, or no variation to correlate
                continue
            r = float(np.corrcoef(even, odd)[0, 1])
            bound = _stats.Z / math.sqrt(m)
            self.r.tests += 1
            what = "across the batch (axis 0)" if axis == 0 else f"along axis {axis}"
            ok = self.r.check("rows independent" if axis == 0 else f"independent along axis {axis}", "p=0.5", round(r, 4), f"0 ± {bound:.2g}", abs(r) <= bound, m=m)
            if not ok:
                if axis == 0:
                    self.r.add(Finding("batch-shared-mask", "error", "p=0.5", "masks are not independent across the "
                                       "batch: rows share their mask", f"correlation {r:.3f} between neighbouring rows",
                                       f"0 ± {bound:.2g}", "draw the mask at the input's full shape (N, ...), not "
                                       "(1, ...) broadcast over the batch"))
                else:
                    self.r.add(Finding("mask-correlated", "error", "p=0.5", f"mask values are not independent {what}",
                                       f"correlation {r:.3f}", f"0 ± {bound:.2g}",
                                       "draw one independent value per element of the noise shape"))


# -- helpers -----------------------------------------------------------------------------------------------
def _connect_weights(inst) -> tuple[np.ndarray, np.ndarray]:
    """``(W as (in, out), bias)`` in float64 of a DropConnect layer of either engine."""
    w = inst.weight
    if hasattr(w, "value"):  # droplab.nn: Parameter (in, out)
        W = np.asarray(w.value, np.float64)
        b = inst.bias.value if getattr(inst, "bias", None) is not None else 0.0
    else:  # torch.nn.Linear layout (out, in)
        W = w.detach().cpu().numpy().astype(np.float64).T
        b = inst.bias.detach().cpu().numpy() if getattr(inst, "bias", None) is not None else 0.0
    return W, np.asarray(b, np.float64)


def _coverage_1d(n: int, b: int) -> list[range]:
    """For each position ``i`` of a length-``n`` axis, the block starts (0..n-b) whose block covers it."""
    return [range(max(0, i - b + 1), min(i, n - b) + 1) for i in range(n)]


def _block_fraction_variance(H: int, W: int, b: int, gamma: float) -> float:
    """The exact variance of one map's dropped fraction under DropBlock (seeds Bernoulli(gamma)
    at the (H-b+1)(W-b+1) block starts, each zeroing its b x b block).

    Pixel ``i`` is dropped unless every seed covering it is off: ``P(kept_i) = (1-gamma)^|S_i|``.
    Two pixels are both kept with probability ``(1-gamma)^|S_i u S_j|``, so
    ``Cov(d_i, d_j) = (1-gamma)^(|S_i|+|S_j|-|S_i n S_j|) - (1-gamma)^(|S_i|+|S_j|)``; the
    sets factor into rows and columns, so ``|S_i n S_j|`` is a product of interval overlaps.
    """
    q = 1.0 - gamma
    rows, cols = _coverage_1d(H, b), _coverage_1d(W, b)
    rlen = np.array([len(r) for r in rows], float)
    clen = np.array([len(c) for c in cols], float)
    rov = np.array([[len(range(max(a.start, c.start), min(a.stop, c.stop))) for c in rows] for a in rows], float)
    cov_ = np.array([[len(range(max(a.start, c.start), min(a.stop, c.stop))) for c in cols] for a in cols], float)
    size = np.multiply.outer(rlen, clen).ravel()  # |S_i| per pixel
    inter = np.einsum("ac,bd->abcd", rov, cov_).reshape(H * W, H * W)  # |S_i n S_j|
    both_kept = q ** (size[:, None] + size[None, :] - inter)
    kept = q ** size
    cov = both_kept - np.outer(kept, kept)
    return float(cov.sum()) / (H * W) ** 2


def _blocks_only(dropped: np.ndarray, b: int) -> bool:
    """Whether every dropped pixel lies in a fully dropped ``b x b`` window inside its map."""
    H, W = dropped.shape[-2:]
    win = np.lib.stride_tricks.sliding_window_view(dropped, (b, b), axis=(-2, -1)).all(axis=(-2, -1))
    covered = np.zeros_like(dropped)
    for i in range(b):
        for j in range(b):
            covered[..., i:i + H - b + 1, j:j + W - b + 1] |= win
    return bool(np.all(covered | ~dropped))
