"""``check_torch_model`` / ``check_model``: dropout bugs in a whole model (PyTorch or ``droplab.nn``).

The doctor runs the model on the example input a few times, with forward hooks (PyTorch) or
wrapped ``forward`` methods (``droplab.nn``), and for PyTorch walks the autograd graph back
from the output. It runs nothing the user did not ask for: two evaluation passes, one training
pass, and the user's MC function when one is given. Afterwards it restores everything it
touched: parameters, buffers (BatchNorm's running statistics), gradients, modes, noise
counters and the global NumPy, torch and ``random`` generators.

Findings, most severe first:

* ``eval-random`` (error): two evaluation passes differ; located to the module whose output
  differs while its input does not, and (PyTorch) to the functional call, e.g. ``F.dropout``
  called without ``training=self.training``.
* ``unused-dropout`` (error): a dropout's output never reaches the model's output (PyTorch: its
  autograd node is not reachable from the output's; ``droplab.nn``: the output does not change
  when the dropout's output is replaced).
* ``channel-input`` (error): channel dropout given an input its spec refuses, or (PyTorch's
  modules) would silently reinterpret, e.g. ``Dropout2d`` on a 3-D tensor.
* ``mc-batchnorm-train`` (error): the MC function runs BatchNorm in training mode.
* ``mc-no-dropout`` (error): the MC function never switches dropout on.
* ``dropout-before-batchnorm`` (warning): dropout feeds BatchNorm directly (the variance
  shift of Li et al. 2019).
* ``dropout-on-logits`` (warning): dropout is applied to the model's output.
* ``raised`` (error): the model (or the MC function) raised, with the input it raised on.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from droplab.doctor._report import Finding, Report
from droplab.doctor._restore import global_rngs, nn_model_state, torch_model_state
from droplab.doctor._specs import channel_rank, spec_of_module
from droplab.doctor._subject import describe_input

__all__ = ["check_torch_model", "check_model"]

_RANDOM = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
           "native_dropout", "bernoulli", "bernoulli_", "rand", "rand_like", "randn", "randn_like", "randint",
           "randint_like", "randperm", "normal", "normal_", "uniform_", "multinomial", "exponential_", "random_",
           "poisson"}
_VIEWS = ("View", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Permute", "Clone", "Expand", "Alias",
          "Contiguous", "T", "Select", "Slice", "Unflatten", "Flatten", "ToCopy")
_OUTPUT_MAPS = ("Softmax", "LogSoftmax", "Sigmoid")
_FIX_TRAINING = "pass training=self.training to F.dropout (or use an nn.Dropout module)"
_FIX_BN = ("put dropout after the last BatchNorm (e.g. only before the classifier), or drop BatchNorm there: "
           "dropout before BatchNorm shifts the variance BatchNorm learns (Li et al. 2019)")
_FIX_MC = "switch only the dropout modules to training mode (dt.enable_mc_dropout(model)); never model.train()"


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def _raised_finding(exc: BaseException, during: str, where: str = "model") -> Finding:
    return Finding("raised", "error", where, f"raised {type(exc).__name__}({_short(exc)!r}) {during}",
                   fix="make the model accept this input, or give the doctor the input it expects "
                       "(FACTORY may return (model, example_input))")


# ================================================================================================
# PyTorch


def _is_torch_dropout(m) -> bool:
    import torch

    if isinstance(m, torch.nn.modules.dropout._DropoutNd) or getattr(m, "is_dropout", False) is True:
        return True
    name = type(m).__name__
    return "Dropout" in name or name in ("DropPath", "DropBlock2d", "StochasticDepth")


def _is_torch_bn(m) -> bool:
    import torch

    return isinstance(m, torch.nn.modules.batchnorm._BatchNorm)


def _tensors(obj) -> list:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _call(model, example):
    if isinstance(example, dict):
        return model(**example)
    if isinstance(example, (tuple, list)):
        return model(*example)
    return model(example)


def _training_arg(func, args, kwargs) -> bool:
    """Whether a dropout-like functional call is active (its training flag, default True)."""
    for key in ("training", "train"):
        if key in kwargs:
            return bool(kwargs[key])
    return bool(args[2]) if len(args) > 2 else True


class _Tracer:
    """Hooks on every module (the path stack, inputs and outputs per call) and a torch
    function mode recording random and functional-dropout calls with the module they ran in."""

    def __init__(self, model) -> None:
        import torch
        from torch.overrides import TorchFunctionMode

        self.model = model
        self.names = {m: (n or "(model)") for n, m in model.named_modules()}
        self.stack: list[str] = []
        self.calls: list[tuple[str, Any, Any]] = []  # (path, inputs, output) in call order
        self.random: list[tuple[str, str, Any]] = []  # (path, function name, output)
        self.channel: list[tuple[str, Any, tuple]] = []  # (path, module, input shape) refused
        self.bn_modes: list[tuple[str, bool]] = []
        self.drop_modes: list[tuple[str, bool]] = []
        self.record_values = False
        tracer = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                name = getattr(func, "__name__", "")
                if name in _RANDOM and ("dropout" not in name or _training_arg(func, args, kwargs)):
                    tracer.random.append((tracer.stack[-1] if tracer.stack else "(model)", name, out))
                return out

        self.mode = Mode
        self.handles = []
        for m, name in self.names.items():
            self.handles.append(m.register_forward_pre_hook(self._pre(m, name)))
            self.handles.append(m.register_forward_hook(self._post(m, name)))
        self.torch = torch

    def _pre(self, m, name):
        def hook(module, args):
            self.stack.append(name)
            if _is_torch_bn(module):
                self.bn_modes.append((name, module.training))
            if _is_torch_dropout(module):
                self.drop_modes.append((name, module.training))
            found = spec_of_module(module)
            if found is not None and args and hasattr(args[0], "dim"):
                rank = channel_rank(*found)
                if rank is not None and args[0].dim() != rank:
                    self.channel.append((name, module, tuple(args[0].shape)))
            if self.record_values:
                self._inputs = getattr(self, "_inputs", {})
                self._inputs[id(module), len(self.stack)] = [t.detach().clone() for t in _tensors(args)]
            return None
        return hook

    def _post(self, m, name):
        def hook(module, args, output):
            if self.stack and self.stack[-1] == name:
                self.stack.pop()
            if self.record_values:
                ins = getattr(self, "_inputs", {}).pop((id(module), len(self.stack) + 1), [])
                self.calls.append((name, ins, [t.detach().clone() for t in _tensors(output)]))
            else:
                self.calls.append((name, args, output))
            return None
        return hook

    def run(self, example):
        self.stack.clear()
        with self.mode():
            return _call(self.model, example)

    def reset(self) -> None:
        self.calls, self.random, self.channel, self.bn_modes, self.drop_modes = [], [], [], [], []

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _same(a: list, b: list) -> bool:
    import torch

    return len(a) == len(b) and all(x.shape == y.shape and bool(torch.equal(x, y)) for x, y in zip(a, b))


def _reachable(outputs) -> set:
    """Every autograd node reachable from ``outputs``' grad_fns."""
    seen, stack = set(), [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return seen


def _through(node, names) -> set:
    """``node`` and the nodes reached from it back through ops whose names start with ``names``."""
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n is None or n in out:
            continue
        out.add(n)
        if type(n).__name__.startswith(names):
            stack.extend(m for m, _ in n.next_functions)
    return out


def check_torch_model(model, example_input, *, mc_fn: Callable | None = None, seed: int = 0,
                      name: str | None = None) -> Report:
    """Find dropout bugs in a PyTorch model; returns a :class:`Report`.

    Args:
        model (torch.nn.Module): the model (restored afterwards: parameters, buffers, gradients,
            modes, droplab noise counters).
        example_input: a tensor, a tuple of positional arguments or a dict of keyword arguments.
        mc_fn (callable | None): the user's MC-dropout sampling function, called as
            ``mc_fn(model, example_input)``; checked for BatchNorm left in training mode and for
            dropout never switched on.
        seed (int): seeds the global torch, NumPy and ``random`` generators while the doctor runs.
        name (str | None): how to call the model in the report.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Dropout(0.5))
        >>> check_torch_model(net, torch.ones(2, 8)).codes()
        ['dropout-on-logits']
    """
    import torch

    report = Report(name or type(model).__name__, "model")
    with global_rngs(seed), torch_model_state(model):
        tracer = _Tracer(model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the doctor reports; PyTorch's own warnings would repeat it
                _torch_checks(model, example_input, tracer, report, mc_fn)
        finally:
            tracer.close()
    report.notes.append("checked with forward hooks and the autograd graph: 2 evaluation passes, 1 training pass"
                        + (", the MC function once" if mc_fn is not None else ""))
    del torch
    return report


def _channel_findings(tracer, report: Report, seen: set, suggest_other_rank: bool = True) -> None:
    """One ``channel-input`` finding per channel-dropout layer that got input of another rank
    (both engines' tracers record ``(path, module, shape)`` in ``tracer.channel``)."""
    for path, module, shape in tracer.channel:
        if path in seen:
            continue
        seen.add(path)
        spec, options = spec_of_module(module)
        rank = channel_rank(spec, options)
        droplab = type(module).__module__.startswith("droplab.")
        what = (f"{type(module).__name__} got a {len(shape)}-D input {shape}; its spec ({spec.layout}) takes "
                f"{rank}-D input" + (", so it raises" if droplab else
                                     ", and PyTorch silently reinterprets it (as an unbatched input or another "
                                     "channel layout), so it drops other units than whole channels"))
        fix = f"give it {spec.layout}" + (", or use the channel dropout of this rank" if suggest_other_rank else "")
        report.add(Finding("channel-input", "error", path, what, f"{len(shape)}-D {shape}", f"{rank}-D {spec.layout}",
                           spec.rank_hint or fix))


def _torch_checks(model, example, tracer: _Tracer, report: Report, mc_fn) -> None:
    import torch

    channel_seen: set = set()
    # -- two evaluation passes -------------------------------------------------------------------
    model.eval()
    tracer.record_values = True
    outs = []
    for _ in range(2):
        tracer.reset()
        try:
            with torch.no_grad():
                out = tracer.run(example)
        except Exception as exc:  # noqa: BLE001 - the user's model raising is a finding
            _channel_findings(tracer, report, channel_seen)
            if not tracer.channel:  # a refused channel input explains the exception already
                report.add(_raised_finding(exc, f"in evaluation mode on {_describe(example)}"))
            return
        outs.append(([t.detach().clone() for t in _tensors(out)], tracer.calls, list(tracer.random)))
    _channel_findings(tracer, report, channel_seen)
    same = _same(outs[0][0], outs[1][0])
    report.check("two evaluation passes equal", "model", same, True, same)
    if not same:
        _locate_eval_randomness(outs, tracer, report)
    # -- one training pass: the autograd graph ---------------------------------------------------
    tracer.record_values = False
    tracer.reset()
    model.train()
    ex = _with_grad(example)
    try:
        with torch.enable_grad():
            out = tracer.run(ex)
    except Exception as exc:  # noqa: BLE001
        _channel_findings(tracer, report, channel_seen)
        if not tracer.channel:
            report.add(_raised_finding(exc, f"in training mode on {_describe(example)}"))
        return
    _channel_findings(tracer, report, channel_seen)
    _graph_checks(model, tracer, _tensors(out), report)
    model.eval()
    # -- the user's MC function ---------------------------------------------------------------------
    if mc_fn is not None:
        _mc_check(model, example, mc_fn, tracer, report, torch_model=True)


def _describe(example) -> str:
    ts = _tensors(example) if not isinstance(example, np.ndarray) else [example]
    return ", ".join(describe_input(t) for t in ts) or type(example).__name__


def _with_grad(example):
    import torch

    if isinstance(example, torch.Tensor):
        return example.detach().clone().requires_grad_(example.is_floating_point())
    if isinstance(example, (tuple, list)):
        return type(example)(_with_grad(e) for e in example)
    if isinstance(example, dict):
        return {k: _with_grad(v) for k, v in example.items()}
    return example


def _locate_eval_randomness(outs, tracer: _Tracer, report: Report) -> None:
    calls_a, calls_b = outs[0][1], outs[1][1]
    origins = []
    for (path, ins_a, out_a), (_, ins_b, out_b) in zip(calls_a, calls_b):
        if _same(ins_a, ins_b) and not _same(out_a, out_b):
            origins.append(path)
    # the deepest origins: a parent differs because its child does
    deepest = [p for p in dict.fromkeys(origins)
               if not any(o != p and (p == "(model)" or o.startswith(p + ".")) for o in origins)]
    random_calls = outs[0][2]
    for path in deepest:
        module = dict(tracer.model.named_modules()).get("" if path == "(model)" else path)
        calls = sorted({fn for p, fn, _ in random_calls if p == path})
        cls = type(module).__name__ if module is not None else "?"
        if calls and not _is_torch_dropout(module):
            what = (f"{', '.join('F.' + c if 'dropout' in c else 'torch.' + c for c in calls)} runs in "
                    f"{path}.forward ({cls}) in evaluation mode: randomness survives model.eval()")
            fix = _FIX_TRAINING if any("dropout" in c for c in calls) else \
                "draw random numbers only when self.training"
        else:
            what = f"{path} ({cls}) is random in evaluation mode: it ignores self.training"
            fix = "return the input unchanged when not self.training"
        report.add(Finding("eval-random", "error", path, what, "two eval passes differ", "identical passes", fix,
                           bug="dropout left active in eval"))
    if not deepest:
        report.add(Finding("eval-random", "error", "(model)", "two evaluation passes differ", "different outputs",
                           "identical outputs", "make evaluation deterministic"))


def _graph_checks(model, tracer: _Tracer, outputs, report: Report) -> None:
    import torch

    reach = _reachable(outputs)
    modules = dict(model.named_modules())
    drop_nodes: dict[Any, str] = {}
    unknown = []
    for path, args, out in tracer.calls:
        m = modules.get("" if path == "(model)" else path)
        if m is None or not _is_torch_dropout(m) or not m.training:
            continue
        for t in _tensors(out):
            if t.grad_fn is None:
                unknown.append(path)
                continue
            drop_nodes[t.grad_fn] = path
    functional = {}
    for path, fn, out in tracer.random:
        m = modules.get("" if path == "(model)" else path)
        if "dropout" in fn and not (m is not None and _is_torch_dropout(m)):
            for t in _tensors(out):
                if t.grad_fn is not None:
                    functional[t.grad_fn] = (path, fn)
    unused = sorted({p for node, p in drop_nodes.items() if node not in reach})
    for path in unused:
        if any(drop_nodes[n] == path for n in drop_nodes if n in reach):
            continue  # called twice, one output used
        cls = type(modules.get(path)).__name__
        report.add(Finding("unused-dropout", "error", path, f"the output of {path} ({cls}) never reaches the model's "
                           "output: dropout regularises nothing (the next layer reads the activation before dropout)",
                           "not in the autograd graph of the output", "on the path to the output",
                           f"feed {path}'s output forward: h = self.drop(h), then use h"))
    for node, (path, fn) in functional.items():
        if node not in reach:
            report.add(Finding("unused-dropout", "error", path, f"F.{fn} in {path}.forward computes an output that "
                               "never reaches the model's output", "not in the autograd graph of the output",
                               "on the path to the output", "use the dropout's result: h = F.dropout(h, ...)"))
    report.check("dropout outputs reach the output", "model", len(unused) == 0, True, not unused)
    for path in sorted(set(unknown)):
        report.notes.append(f"{path}: its output has no autograd node (input without gradient); reachability "
                            "not checked there")
    all_drop = {**drop_nodes, **{n: p for n, (p, _) in functional.items()}}
    # dropout feeding BatchNorm directly (through reshapes at most)
    warned = set()
    for path, args, out in tracer.calls:
        m = modules.get("" if path == "(model)" else path)
        if m is None or not _is_torch_bn(m):
            continue
        for t in _tensors(args)[:1]:
            if t.grad_fn is None:
                continue
            hits = [all_drop[n] for n in _through(t.grad_fn, _VIEWS) if n in all_drop]
            for d in hits:
                if (d, path) not in warned:
                    warned.add((d, path))
                    report.add(Finding("dropout-before-batchnorm", "warning", d, f"dropout {d} feeds BatchNorm "
                                       f"{path} directly", "dropout -> BatchNorm", "BatchNorm before dropout",
                                       _FIX_BN, bug="variance shift (Li et al. 2019)"))
    # dropout on the logits: the output is a dropout's output (through reshapes or softmax at most)
    for t in outputs:
        if t.grad_fn is None:
            continue
        for n in _through(t.grad_fn, _VIEWS + _OUTPUT_MAPS):
            if n in all_drop:
                report.add(Finding("dropout-on-logits", "warning", all_drop[n], f"dropout {all_drop[n]} is applied "
                                   "to the model's output (the logits): it zeroes predictions, not features",
                                   "dropout is the last layer", "dropout before the final layer",
                                   "move dropout before the output layer (Linear -> Dropout -> Linear)"))
    del torch


@contextlib.contextmanager
def _noise_draws() -> Iterator[list[int]]:
    """Count the noise draws of droplab's streams (``NoiseStream.next`` / ``at``) while inside:
    how the doctor sees a ``droplab.nn`` MC function sample, whatever wrappers it replaces."""
    from droplab import _rng

    count = [0]
    saved = {name: getattr(_rng.NoiseStream, name) for name in ("next", "at")}

    def counting(orig):
        def method(self, *args, **kwargs):
            count[0] += 1
            return orig(self, *args, **kwargs)
        return method

    for name, orig in saved.items():
        setattr(_rng.NoiseStream, name, counting(orig))
    try:
        yield count
    finally:
        for name, orig in saved.items():
            setattr(_rng.NoiseStream, name, orig)


def _mc_check(model, example, mc_fn, tracer, report: Report, torch_model: bool) -> None:
    tracer.reset()
    model.eval()
    bns = [(tracer.names.get(m, "?"), m, _snapshot(getattr(m, "num_batches_tracked", None))) for m in tracer.names
           if (_is_torch_bn(m) if torch_model else isinstance(m, tracer.bn_types))]
    try:
        with _noise_draws() as draws, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if torch_model:
                with tracer.mode():
                    mc_fn(model, example)
            else:
                mc_fn(model, example)
    except Exception as exc:  # noqa: BLE001
        report.add(_raised_finding(exc, f"in the MC function on {_describe(example)}", "mc_fn"))
        return
    # BatchNorm in training mode: seen by the hooks, or by its batch counter moving
    moved = [p for p, m, n in bns if n is not None and not _same_value(getattr(m, "num_batches_tracked", None), n)]
    bn_train = sorted({p for p, training in tracer.bn_modes if training} | set(moved))
    drop_on = (any(training for _, training in tracer.drop_modes) or any("dropout" in fn for _, fn, _ in tracer.random)
               or draws[0] > 0)
    report.check("MC: BatchNorm stays in eval", "mc_fn", not bn_train, True, not bn_train)
    if bn_train:
        report.add(Finding("mc-batchnorm-train", "error", ", ".join(bn_train[:3]) + ("..." if len(bn_train) > 3
                                                                                        else ""),
                           "the MC function runs BatchNorm in training mode (model.train()): predictions use the "
                           "batch's statistics and the running statistics move", f"{len(bn_train)} BatchNorm module(s) "
                           "in training mode", "BatchNorm in eval mode, dropout in training mode", _FIX_MC,
                           bug="MC dropout with model.train()"))
    report.check("MC: dropout switched on", "mc_fn", drop_on, True, drop_on)
    if not drop_on:
        report.add(Finding("mc-no-dropout", "error", "mc_fn", "the MC function never switches dropout on: every "
                           "sample is the same deterministic prediction", "dropout in eval mode in every call",
                           "dropout in training mode while sampling", _FIX_MC))


# ================================================================================================
# droplab.nn


def _snapshot(v):
    return v.clone() if hasattr(v, "clone") else copy.copy(v)


def _same_value(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - tensors compare element-wise
        return bool((a == b).all())


def _nn_names(model) -> dict:
    """module -> path, the attribute (or index, for Sequential) names from the root."""
    from droplab.nn.module import Module, Sequential

    names = {model: "(model)"}
    stack = [(model, "")]
    while stack:
        m, prefix = stack.pop()
        kids: list[tuple[str, Any]] = []
        if isinstance(m, Sequential):
            kids = [(str(i), c) for i, c in enumerate(m.layers)]
        else:
            for k, v in vars(m).items():
                if isinstance(v, Module):
                    kids.append((k, v))
                elif isinstance(v, (list, tuple)):
                    kids += [(f"{k}.{i}", c) for i, c in enumerate(v) if isinstance(c, Module)]
            known = {id(c) for _, c in kids}
            kids += [(f"child{i}", c) for i, c in enumerate(m.children()) if id(c) not in known]
        for k, c in kids:
            if c not in names:
                names[c] = prefix + k
                stack.append((c, prefix + k + "."))
    return names


class _NNTracer:
    """Wrapped ``forward`` methods (instance attributes, removed by the state restore) that
    record each call's path, input and output, and can replace a module's output."""

    def __init__(self, model) -> None:
        from droplab.nn.norm import BatchNorm1d, BatchNorm2d

        self.model = model
        self.names = _nn_names(model)
        self.calls: list[tuple[str, Any, Any, Any]] = []  # (path, module, input, output)
        self.channel: list[tuple[str, Any, tuple]] = []
        self.bn_modes: list[tuple[str, bool]] = []
        self.drop_modes: list[tuple[str, bool]] = []
        self.random: list = []
        self.replace: dict[int, Callable] = {}
        self.bn_types = (BatchNorm1d, BatchNorm2d)
        for m, name in self.names.items():
            if m is model:
                continue
            vars(m)["forward"] = self._wrap(m, name, vars(m).get("forward") or type(m).forward.__get__(m))

    def _wrap(self, m, name, orig):
        def forward(x, *args, **kwargs):
            if isinstance(m, self.bn_types):
                self.bn_modes.append((name, m.training))
            if getattr(m, "is_dropout", False):
                self.drop_modes.append((name, m.training))
            found = spec_of_module(m)
            if found is not None and hasattr(x, "ndim"):
                rank = channel_rank(*found)
                if rank is not None and np.ndim(x) != rank:
                    self.channel.append((name, m, tuple(np.shape(x))))
            out = orig(x, *args, **kwargs)
            if id(m) in self.replace:
                out = self.replace[id(m)](out)
            self.calls.append((name, m, x, out))
            return out
        return forward

    def reset(self) -> None:
        self.calls, self.channel, self.bn_modes, self.drop_modes = [], [], [], []


def check_model(model, example_input, *, mc_fn: Callable | None = None, seed: int = 0,
                name: str | None = None) -> Report:
    """Find dropout bugs in a ``droplab.nn`` model; returns a :class:`Report`.

    The same checks as :func:`check_torch_model`, with wrapped ``forward`` methods instead of
    hooks; whether a dropout's output reaches the model's output is found by replacing it (with
    NaN, then with ``2 y + 1``) and seeing whether the output changes.

    Example:
        >>> import numpy as np
        >>> from droplab import nn
        >>> model = nn.Sequential(nn.Dense(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Dense(8, 2), seed=0)
        >>> check_model(model, np.ones((16, 4), np.float32)).codes()
        ['dropout-before-batchnorm']
    """
    report = Report(name or type(model).__name__, "model")
    x = np.asarray(example_input)
    with global_rngs(seed), nn_model_state(model):
        tracer = _NNTracer(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _nn_checks(model, x, tracer, report, mc_fn)
    report.notes.append("checked with wrapped forward methods: 2 evaluation passes, 1 training pass, one evaluation "
                        "pass per dropout layer with its output replaced" + (", the MC function once"
                                                                             if mc_fn is not None else ""))
    return report


def _nn_checks(model, x, tracer: _NNTracer, report: Report, mc_fn) -> None:
    seen: set = set()
    model.eval()
    passes = []
    for _ in range(2):
        tracer.reset()
        try:
            with np.errstate(all="ignore"):
                out = np.array(model.forward(x), copy=True)
        except Exception as exc:  # noqa: BLE001
            _channel_findings(tracer, report, seen, suggest_other_rank=False)
            if not tracer.channel:  # a refused channel input explains the exception already
                report.add(_raised_finding(exc, f"in evaluation mode on {describe_input(x)}"))
            return
        passes.append((out, [(p, m, np.array(i, copy=True), np.array(o, copy=True)) for p, m, i, o in tracer.calls]))
    _channel_findings(tracer, report, seen, suggest_other_rank=False)
    same = np.array_equal(passes[0][0], passes[1][0], equal_nan=True)
    report.check("two evaluation passes equal", "model", bool(same), True, bool(same))
    if not same:
        origins = [p for (p, m, ia, oa), (_, _, ib, ob) in zip(passes[0][1], passes[1][1])
                   if np.array_equal(ia, ib, equal_nan=True) and not np.array_equal(oa, ob, equal_nan=True)]
        deepest = [p for p in dict.fromkeys(origins) if not any(o != p and o.startswith(p + ".") for o in origins)]
        for path in deepest or ["(model)"]:
            m = next((m for m, n in tracer.names.items() if n == path), None)
            report.add(Finding("eval-random", "error", path, f"{path} ({type(m).__name__}) is random in evaluation "
                               "mode: it ignores self.training", "two eval passes differ", "identical passes",
                               "return the input unchanged when not self.training", bug="dropout left active in eval"))
    base = passes[0][0]
    # -- does each dropout's output reach the output? -------------------------------------------------
    drops = [m for m in tracer.names if m is not model and getattr(m, "is_dropout", False)]
    called = {id(m) for _, m, _, _ in passes[0][1]}
    unused = []
    for m in drops:
        path = tracer.names[m]
        if id(m) not in called:
            report.add(Finding("dropout-never-called", "warning", path, f"{path} ({type(m).__name__}) is never "
                               "called by the model's forward", "not called", "called", "apply it in forward, or "
                               "remove it"))
            continue
        changed = False
        for fn in (lambda y: np.full_like(y, np.nan), lambda y: y * 2 + 1):
            tracer.replace = {id(m): fn}
            tracer.reset()
            try:
                with np.errstate(all="ignore"):
                    out = model.forward(x)
            finally:
                tracer.replace = {}
            changed |= not np.array_equal(out, base, equal_nan=True)
            if changed:
                break
        if not changed:
            unused.append(path)
            report.add(Finding("unused-dropout", "error", path, f"the output of {path} ({type(m).__name__}) never "
                               "reaches the model's output: dropout regularises nothing", "output unchanged when it "
                               "is replaced", "the output depends on it", f"use {path}'s output in the next layer"))
    report.check("dropout outputs reach the output", "model", not unused, True, not unused)
    # -- one training pass: who feeds whom ---------------------------------------------------------------
    tracer.reset()
    model.train()
    try:
        with np.errstate(all="ignore"):
            out = model.forward(x)
    except Exception as exc:  # noqa: BLE001
        _channel_findings(tracer, report, seen, suggest_other_rank=False)
        if not tracer.channel:
            report.add(_raised_finding(exc, f"in training mode on {describe_input(x)}"))
        return
    _channel_findings(tracer, report, seen, suggest_other_rank=False)
    drop_out = {id(o): p for p, m, i, o in tracer.calls if getattr(m, "is_dropout", False) and m.training}
    for p, m, i, o in tracer.calls:
        if isinstance(m, tracer.bn_types) and id(i) in drop_out:
            report.add(Finding("dropout-before-batchnorm", "warning", drop_out[id(i)], f"dropout {drop_out[id(i)]} "
                               f"feeds BatchNorm {p} directly", "dropout -> BatchNorm", "BatchNorm before dropout",
                               _FIX_BN, bug="variance shift (Li et al. 2019)"))
    from droplab.nn.activations import Sigmoid, Softmax

    last = id(out)
    feeds = {id(o): (p, m, id(i)) for p, m, i, o in tracer.calls}
    hop = 0
    while last in feeds and hop < 3:
        p, m, inp = feeds[last]
        if getattr(m, "is_dropout", False):
            report.add(Finding("dropout-on-logits", "warning", p, f"dropout {p} is applied to the model's output (the "
                               "logits): it zeroes predictions, not features", "dropout is the last layer",
                               "dropout before the final layer", "move dropout before the output layer "
                               "(Dense -> Dropout -> Dense)"))
            break
        if not isinstance(m, (Softmax, Sigmoid)):
            break
        last, hop = inp, hop + 1
    model.eval()
    if mc_fn is not None:
        _mc_check(model, x, mc_fn, tracer, report, torch_model=False)

