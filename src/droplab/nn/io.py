"""Model files: ``model.save(path)`` and ``nn.load(path)``, one ``.npz`` that never runs code.

A model file is an uncompressed ``.npz`` archive holding:

* ``__spec__``: UTF-8 JSON (stored as a ``uint8`` array) with the format version, the droplab
  version, the architecture (each module's class name and ``config()``; containers list
  their children), the declared shape and dtype of every stored array, the mask key and call
  counter of every random layer, the loss the model was fit with (its output transform) and,
  when asked, the optimizer's class, hyper-parameters and step count;
* ``param/<i>``: every parameter, by position in ``model.parameters()``;
* ``buffer/<m>/<name>``: non-trainable state (``Module._buffers()``, e.g. BatchNorm running
  statistics) of the ``m``-th module in ``model.modules()`` order;
* ``optim/<i>/<slot>``: the optimizer's state (momenta, moments) for parameter ``i``;
* ``extra/<name>``: arrays a caller adds (``fit`` checkpoints keep the early-stopping best
  weights there).

Loading opens the archive with ``np.load(allow_pickle=False)``, checks every array's header
(dtype among float32/float64/int64/uint8, size consistent with the archive) before reading
it, and validates the whole spec (known layer types from :mod:`droplab.nn` only, arguments
that are JSON scalars or lists, array shapes and dtypes consistent, a size bound) before
building any layer. Every problem is one ``ValueError`` line naming the file. Writes are
atomic: a temporary file in the same folder, ``fsync``, then ``os.replace``; a reader never
sees half a file and an interrupted save leaves the previous file intact.

A module's state outside its parameters is saved through two conventions: ``_buffers()``
returns a dict name -> the live array (load copies into it in place), and random layers keep
their mask key in ``_key`` (two 32-bit words) and their call counter in ``counter``.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from droplab._files import atomic_open
from droplab import __version__, _validate
from droplab.nn.losses import Loss
from droplab.nn.module import Module, Parameter
from droplab.nn.optim import Optimizer

__all__ = ["FORMAT_VERSION", "save", "load", "load_optimizer", "layer_types", "write_state", "read_state",
           "write_checkpoint", "read_checkpoint", "set_generator_state"]

#: Version of the file layout; files from a newer version are refused with a clear error.
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}
_ARRAY_DTYPES = _ALLOWED_DTYPES | {np.dtype(np.int64), np.dtype(np.uint8)}
_MAX_SPEC_BYTES = 16 << 20
_MAX_DEPTH = 64
_MAX_MODULES = 100_000
# A layer's integer arguments (sizes) may not multiply to more than this many elements, or 16
# times the parameter elements the file actually holds: a forged spec cannot make load allocate
# far more memory than the file's own size suggests.
_MIN_SIZE_BOUND = 1 << 24


class ModelFileError(ValueError):
    """A model file that cannot be used (damaged, forged, or from a newer droplab)."""


def _error(path: Any, problem: str) -> ModelFileError:
    return ModelFileError(f"nn.load: cannot use {str(path)!r}: {problem}.")


# ---------------------------------------------------------------------------- registries
def _public_subclasses(base: type) -> dict[str, type]:
    """Every public class of ``droplab.nn`` derived from ``base`` (found afresh on each call, so
    layers added to ``droplab.nn`` are known without registering them here)."""
    import droplab.nn as nn_pkg

    names = getattr(nn_pkg, "__all__", None) or [n for n in vars(nn_pkg) if not n.startswith("_")]
    out = {}
    for name in names:
        obj = getattr(nn_pkg, name, None)
        if isinstance(obj, type) and issubclass(obj, base) and obj is not base and obj.__name__ == name:
            out[name] = obj
    return out


def layer_types() -> dict[str, type]:
    """Class name -> class of every module type a model file may contain."""
    return _public_subclasses(Module)


def _ctor_config(obj: Any, kind: str) -> dict[str, Any]:
    """Constructor arguments of an optimizer or loss, read back from its same-named attributes."""
    out = {}
    for name, prm in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            raise TypeError(_validate.message("save", kind, f"an object whose argument {name!r} is an attribute",
                                              type(obj).__name__))
        out[name] = _jsonable(getattr(obj, name), f"{type(obj).__name__}.{name}")
    return out


def _jsonable(value: Any, what: str) -> Any:
    """A JSON scalar or (nested) list; tuples become lists, numpy scalars Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"save: {what} is {value}, which a model file cannot hold.")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, what) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    raise TypeError(f"save: {what} is a {type(value).__name__}, which a model file cannot hold "
                    "(JSON scalars and lists only).")


# ---------------------------------------------------------------------------------- save
def _module_spec(m: Module, known: dict[str, type], state: dict[str, np.ndarray], index: list[int]) -> dict:
    name = type(m).__name__
    if known.get(name) is not type(m):
        raise TypeError(_validate.message("save", "model", "built from droplab.nn layers only",
                                          f"a {name} module", "Only public droplab.nn classes can be saved."))
    i = index[0]
    index[0] += 1
    config = {k: _jsonable(v, f"{name}.config()[{k!r}]") for k, v in m.config().items() if k != "seed"}
    node: dict[str, Any] = {"type": name, "config": config, "training": bool(m.training)}
    key = getattr(m, "_key", None)
    if key is not None:
        node["key"] = [int(k) for k in key]
    counter = getattr(m, "counter", None)
    if isinstance(counter, numbers.Integral) and not isinstance(counter, bool):
        node["counter"] = int(counter)
    buffers = _module_buffers(m)
    if buffers:
        node["buffers"] = sorted(buffers)
        for bname, arr in buffers.items():
            state[f"buffer/{i}/{bname}"] = np.asarray(arr)
    kids = m.children()
    if kids:
        node["children"] = [_module_spec(k, known, state, index) for k in kids]
        args = _child_args(m, kids, config)
        if args:
            node["child_args"] = args
    return node


def _child_args(m: Module, kids: list[Module], config: dict) -> dict[str, Any]:
    """Which constructor argument each child was passed as: ``{"block": 0}`` for
    ``Residual(block)``, ``{"*layers": [0, 1, 2]}`` for ``Sequential(*layers)``. Children not
    named here are ones the constructor builds itself (DropConnect's Dense)."""
    out: dict[str, Any] = {}
    position = {id(k): i for i, k in enumerate(kids)}
    for name, prm in inspect.signature(type(m).__init__).parameters.items():
        if name == "self" or name in config or prm.kind is prm.VAR_KEYWORD:
            continue
        value = getattr(m, name, None)
        if prm.kind is prm.VAR_POSITIONAL:
            if isinstance(value, (list, tuple)) and all(id(v) in position for v in value):
                out["*" + name] = [position[id(v)] for v in value]
        elif isinstance(value, Module) and id(value) in position:
            out[name] = position[id(value)]
    return out


def _module_buffers(m: Module) -> dict[str, np.ndarray]:
    """A module's buffers: ``_buffers()``, or a public ``buffers()`` where a layer defines one.
    Each name is the attribute holding that state (an array, or a number such as a count)."""
    out = m._buffers()
    if not out and callable(getattr(m, "buffers", None)):
        out = m.buffers()
    return {str(k): np.asarray(v) for k, v in out.items()}


def _optimizer_spec(opt: Optimizer, params: list[Parameter], state: dict[str, np.ndarray]) -> dict:
    known = _public_subclasses(Optimizer)
    name = type(opt).__name__
    if known.get(name) is not type(opt):
        raise TypeError(_validate.message("save", "optimizer", "a droplab.nn optimizer", name))
    position = {id(p): i for i, p in enumerate(params)}
    slots = {}
    for pid, st in opt._state.items():
        if pid not in position:
            raise ValueError("save: `optimizer` holds state for parameters that are not this model's; "
                             "save it with the model it trains.")
        i = position[pid]
        slots[str(i)] = sorted(st)
        for sname, arr in st.items():
            state[f"optim/{i}/{sname}"] = np.asarray(arr)
    return {"type": name, "config": _ctor_config(opt, "optimizer"), "iterations": int(opt.iterations),
            "slots": slots}


def _spec(model: Module, optimizer: Optimizer | None, extra_arrays: dict[str, np.ndarray],
          extra: dict | None) -> tuple[dict, dict[str, np.ndarray]]:
    if not isinstance(model, Module):
        raise TypeError(_validate.message("save", "model", "a droplab Module", type(model).__name__))
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(_validate.message("save", "optimizer", "a droplab optimizer or None",
                                          type(optimizer).__name__))
    state: dict[str, np.ndarray] = {}
    params = model.parameters()
    for i, p in enumerate(params):
        state[f"param/{i}"] = p.value
    tree = _module_spec(model, layer_types(), state, [0])
    spec: dict[str, Any] = {"format": "droplab-model", "format_version": FORMAT_VERSION, "droplab": __version__,
                            "model": tree}
    shuffle = _shuffle_state(model)
    if shuffle is not None:
        spec["shuffle"] = shuffle
    loss = getattr(model, "_loss", None)
    if loss is not None:
        known = _public_subclasses(Loss)
        if known.get(type(loss).__name__) is type(loss):
            spec["loss"] = {"type": type(loss).__name__, "config": _ctor_config(loss, "loss")}
    if optimizer is not None:
        spec["optimizer"] = _optimizer_spec(optimizer, params, state)
    for k, arr in extra_arrays.items():
        state[f"extra/{k}"] = np.asarray(arr)
    if extra is not None:
        spec["extra"] = extra
    for k, arr in state.items():
        if arr.dtype not in _ARRAY_DTYPES:
            raise TypeError(f"save: array {k!r} has dtype {arr.dtype}; model files hold "
                            "float32, float64, int64 or uint8 arrays only.")
    spec["arrays"] = {k: {"shape": list(a.shape), "dtype": a.dtype.name} for k, a in state.items()}
    return spec, state


def _shuffle_state(model: Module) -> dict | None:
    """The model's own shuffling seed and generator (``fit`` without ``seed=`` draws from them)."""
    ss, g = model._fit_seed, getattr(model, "_fit_rng", None)
    if ss is None and g is None:
        return None
    out: dict[str, Any] = {}
    if ss is not None and isinstance(ss.entropy, int):
        out["seed"] = {"entropy": int(ss.entropy), "spawn_key": [int(k) for k in ss.spawn_key],
                       "n_children_spawned": int(ss.n_children_spawned)}
    if g is not None and isinstance(g.bit_generator, np.random.PCG64):
        out["generator"] = g.bit_generator.state
    return out


def _set_generator_state(path: Path, g: np.random.Generator, state: Any, where: str) -> None:
    if (not isinstance(state, dict) or state.get("bit_generator") != "PCG64"
            or not isinstance(g.bit_generator, np.random.PCG64)):
        raise _error(path, f"{where} must be the state of a PCG64 generator")
    try:
        g.bit_generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError):
        raise _error(path, f"{where} is not a valid PCG64 state") from None


def _restore_shuffle(path: Path, model: Module, node: Any) -> None:
    from droplab import _rng

    if not isinstance(node, dict):
        raise _error(path, "the spec's 'shuffle' must be an object")
    seed = node.get("seed")
    if seed is not None:
        try:
            model._fit_seed = np.random.SeedSequence(seed["entropy"], spawn_key=tuple(seed["spawn_key"]),
                                                     n_children_spawned=seed["n_children_spawned"])
        except (ValueError, TypeError, KeyError, OverflowError):
            raise _error(path, "the spec's 'shuffle' seed is not a valid SeedSequence") from None
    if "generator" in node:
        g = _rng.generator(np.random.SeedSequence(0))
        _set_generator_state(path, g, node["generator"], "the spec's 'shuffle' generator")
        model._fit_rng = g


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def _check_path(where: str, path: Any, name: str = "path") -> Path:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise TypeError(_validate.message(where, name, "a file path (str or os.PathLike)", path))
    return Path(path).expanduser()


def write_state(path: Any, model: Module, *, optimizer: Optimizer | None = None,
                extra: dict | None = None, extra_arrays: dict[str, np.ndarray] | None = None) -> None:
    """:func:`save` plus caller data: ``extra`` (JSON) and ``extra_arrays`` (float/int arrays).

    ``fit`` writes its checkpoints with this.
    """
    path = _check_path("save", path)
    spec, state = _spec(model, optimizer, dict(extra_arrays or {}), extra)
    try:
        text = json.dumps(spec, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save: `extra` must be JSON (finite numbers, str, lists, dicts); {exc}.") from None
    arrays = {"__spec__": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    arrays.update(state)
    _atomic_savez(path, arrays)


def save(model: Module, path: Any, *, optimizer: Optimizer | None = None) -> None:
    """Write ``model`` (and, when given, ``optimizer``'s state) to one ``.npz`` file, atomically.

    Args:
        model: a network built from :mod:`droplab.nn` layers.
        path (str | os.PathLike): the file, written exactly as named (``.npz`` is the usual
            suffix); its folder is created when missing.
        optimizer: an optimizer training ``model``; its hyper-parameters, step count (the lr
            schedule's position) and moments are stored. Default None.

    Raises:
        TypeError: a layer, optimizer or argument that a model file cannot hold.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from droplab import nn
        >>> model = nn.Sequential(nn.Dense(2, 4), nn.ReLU(), nn.Dropout(0.3), nn.Dense(4, 3), seed=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> model.save(path)
        >>> twin = nn.load(path)
        >>> x = np.ones((5, 2), np.float32)
        >>> bool(np.array_equal(twin.forward(x), model.forward(x)))  # same weights, same masks
        True
    """
    write_state(path, model, optimizer=optimizer)


# ---------------------------------------------------------------------------------- load
def _read_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    with zf.open(member) as f:
        major, _minor = np.lib.format.read_magic(f)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif major == 2:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy version {major}")
        header_len = f.tell()
    size = zf.getinfo(member).file_size
    if dtype.hasobject or dtype not in _ARRAY_DTYPES:
        raise TypeError(str(dtype))
    if header_len + math.prod(shape) * dtype.itemsize != size:
        raise ValueError("size mismatch")
    return shape, fortran, dtype


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, each header checked before its data is read; never unpickles."""
    if not path.is_file():
        raise _error(path, "no such file")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file may fail anywhere inside zipfile
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            raise _error(path, "not a model file (it holds pickled data, which is never loaded)") from None
        raise _error(path, "not a readable .npz archive (truncated or damaged?)") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise _error(path, "not a model file (a single .npy array, not an .npz archive)")
    out: dict[str, np.ndarray] = {}
    with z:
        if "__spec__" not in z.files:
            raise _error(path, "not a droplab model file (no '__spec__' entry)")
        for name in z.files:
            try:
                _read_header(z.zip, name + ".npy")
            except TypeError as exc:
                raise _error(path, f"array {name!r} has dtype {exc}; model files hold float32, float64, "
                                   "int64 or uint8 arrays only (pickled objects are never loaded)") from None
            except Exception:  # noqa: BLE001 - as above
                raise _error(path, f"array {name!r} is damaged (bad header or size)") from None
            try:
                out[name] = z[name]
            except Exception:  # noqa: BLE001 - as above
                raise _error(path, f"array {name!r} is unreadable (truncated or damaged?)") from None
    return out


def _check_json_value(path: Path, value: Any, where: str, depth: int = 0) -> None:
    if depth > 8:
        raise _error(path, f"{where} is nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _error(path, f"{where} is not finite")
        return
    if isinstance(value, list):
        for v in value:
            _check_json_value(path, v, where, depth + 1)
        return
    raise _error(path, f"{where} must be a JSON scalar or list; found a {type(value).__name__}")


def _int_field(path: Path, node: dict, key: str, where: str, low: int = 0, high: int | None = None) -> int:
    v = node[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v >= high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high})"
        raise _error(path, f"{where}: {key!r} must be {allowed}; found {v!r}")
    return v


def _parse_spec(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    raw = arrays.pop("__spec__")
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > _MAX_SPEC_BYTES:
        raise _error(path, "the '__spec__' entry must be UTF-8 JSON bytes (a 1-D uint8 array)")
    try:
        spec = json.loads(raw.tobytes().decode("utf-8"),
                          parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _error(path, "the '__spec__' entry is not valid JSON") from None
    if not isinstance(spec, dict) or spec.get("format") != "droplab-model":
        raise _error(path, "not a droplab model file (its spec has no 'format': 'droplab-model')")
    version = spec.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _error(path, f"'format_version' must be a positive integer; found {version!r}")
    if version > FORMAT_VERSION:
        raise _error(path, f"it was written in model-file format {version} (droplab {spec.get('droplab', '?')}), "
                           f"newer than this droplab {__version__} reads (format {FORMAT_VERSION}); "
                           "upgrade droplab to load it")
    for key in ("model", "arrays"):
        if not isinstance(spec.get(key), dict):
            raise _error(path, f"the spec has no {key!r} object")
    declared = spec["arrays"]
    if set(declared) != set(arrays):
        missing = sorted(set(declared) - set(arrays))
        unexpected = sorted(set(arrays) - set(declared))
        what = f"missing array {missing[0]!r}" if missing else f"unexpected array {unexpected[0]!r}"
        raise _error(path, f"{what} (the spec and the archive disagree)")
    for name, d in declared.items():
        arr = arrays[name]
        if not isinstance(d, dict) or d.get("shape") != list(arr.shape) or d.get("dtype") != arr.dtype.name:
            raise _error(path, f"array {name!r} has shape {arr.shape} and dtype {arr.dtype}; the spec declares {d!r}")
    return spec


def _check_tree(path: Path, node: Any, known: dict[str, type], bound: int, count: list[int], depth: int = 0) -> None:
    """Validate one module node (and its children) without building anything."""
    where = f"module {count[0]}"
    count[0] += 1
    if depth > _MAX_DEPTH or count[0] > _MAX_MODULES:
        raise _error(path, "the architecture is nested too deeply or has too many modules")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str) or not isinstance(node.get("config"), dict):
        raise _error(path, f"{where} must be an object with a 'type' name and a 'config' object")
    name = node["type"]
    if name not in known:
        raise _error(path, _validate.message(where, "type", "a droplab.nn layer", name,
                                             "Model files may only name droplab.nn classes.").rstrip("."))
    where = f"{where} ({name})"
    size = 1
    for k, v in node["config"].items():
        _check_json_value(path, v, f"{where} argument {k!r}")
        for item in (v if isinstance(v, list) else [v]):
            if isinstance(item, int) and not isinstance(item, bool) and item > 1:
                size *= item
    if size > bound:
        raise _error(path, f"{where} has arguments {node['config']} describing more than {bound} elements, "
                           "far more than the file's parameters")
    if "key" in node:
        key = node["key"]
        if (not isinstance(key, list) or len(key) != 2
                or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 2**32 for k in key)):
            raise _error(path, f"{where}: 'key' must be two integers in [0, 2**32); found {key!r}")
    if "counter" in node:
        _int_field(path, node, "counter", where, 0, 2**62)
    buffers = node.get("buffers", [])
    if not isinstance(buffers, list) or not all(isinstance(b, str) for b in buffers):
        raise _error(path, f"{where}: 'buffers' must be a list of names")
    kids = node.get("children", [])
    if not isinstance(kids, list):
        raise _error(path, f"{where}: 'children' must be a list")
    for kid in kids:
        _check_tree(path, kid, known, bound, count, depth + 1)


def _build(path: Path, node: dict, known: dict[str, type], count: list[int]) -> Module:
    i = count[0]
    count[0] += 1
    kids = [_build(path, k, known, count) for k in node.get("children", [])]
    cls = known[node["type"]]
    where = f"module {i} ({node['type']})"
    params = inspect.signature(cls.__init__).parameters
    args: list[Module] = []
    kwargs = dict(node["config"])
    used: set[int] = set()
    child_args = node.get("child_args", {})
    if not isinstance(child_args, dict):
        raise _error(path, f"{where}: 'child_args' must be an object")
    for name, ref in child_args.items():
        star = name.startswith("*")
        prm = params.get(name[1:] if star else name)
        refs = ref if star else [ref]
        kind_ok = prm is not None and (prm.kind is prm.VAR_POSITIONAL if star else
                                       prm.kind in (prm.POSITIONAL_OR_KEYWORD, prm.KEYWORD_ONLY))
        if (not kind_ok or name in kwargs or not isinstance(refs, list)
                or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < len(kids) and r not in used
                           for r in refs) or len(set(refs)) != len(refs)):
            raise _error(path, f"{where}: 'child_args' entry {name!r} does not fit the constructor or the children")
        used.update(refs)
        if star:
            args.extend(kids[r] for r in refs)
        else:
            kwargs[name] = kids[ref]
    try:
        m = cls(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise _error(path, f"module {i} ({node['type']}) cannot be rebuilt from its config: {exc}") from None
    return m


def _restore_modules(path: Path, model: Module, tree: dict, arrays: dict[str, np.ndarray]) -> None:
    nodes: list[dict] = []

    def walk(n: dict) -> None:
        nodes.append(n)
        for k in n.get("children", []):
            walk(k)

    walk(tree)
    mods = list(model.modules())
    if len(mods) != len(nodes):
        raise _error(path, f"the architecture rebuilds into {len(mods)} modules; the spec lists {len(nodes)}")
    for i, (m, n) in enumerate(zip(mods, nodes)):
        where = f"module {i} ({n['type']})"
        if type(m).__name__ != n["type"]:
            raise _error(path, f"{where} rebuilds as a {type(m).__name__}")
        if "key" in n:
            if getattr(m, "_key", None) is None:
                raise _error(path, f"{where} has a mask key but the layer has no randomness")
            m._key = (int(n["key"][0]), int(n["key"][1]))
        if "counter" in n:
            if not hasattr(m, "counter"):
                raise _error(path, f"{where} has a call counter but the layer has none")
            m.counter = int(n["counter"])
        live = _module_buffers(m)
        if sorted(live) != sorted(n.get("buffers", [])):
            raise _error(path, f"{where} has buffers {sorted(live)}; the file holds {sorted(n.get('buffers', []))}")
        for bname, value in live.items():
            current = getattr(m, bname, None)
            if isinstance(current, np.ndarray):
                _copy_into(path, f"buffer/{i}/{bname}", arrays, current)
            else:  # a number kept as an attribute (e.g. a batch count)
                dest = np.empty_like(value)
                _copy_into(path, f"buffer/{i}/{bname}", arrays, dest)
                if dest.ndim != 0 or not isinstance(current, (numbers.Number, np.generic)):
                    raise _error(path, f"{where}: buffer {bname!r} is not an attribute of the layer")
                setattr(m, bname, type(current)(dest.item()) if isinstance(current, numbers.Number) else dest[()])
        m.training = bool(n.get("training", True))


def _copy_into(path: Path, name: str, arrays: dict[str, np.ndarray], dest: np.ndarray) -> None:
    if name not in arrays:
        raise _error(path, f"missing array {name!r}")
    src = arrays[name]
    if src.shape != dest.shape or src.dtype != dest.dtype:
        raise _error(path, f"array {name!r} has shape {src.shape} and dtype {src.dtype}; "
                           f"the layer expects shape {dest.shape} and dtype {dest.dtype}")
    if src.dtype.kind == "f" and not np.isfinite(src).all():
        raise _error(path, f"array {name!r} holds NaN or infinite values")
    np.copyto(dest, src)


def read_state(path: Any) -> tuple[Module, dict, dict[str, np.ndarray]]:
    """Load a model file: ``(model, spec, arrays)``, the spec and arrays already validated.

    :func:`load` and ``fit``'s resume are built on this.
    """
    path = _check_path("nn.load", path)
    spec, arrays = _read_validated(path)
    model = _build(path, spec["model"], layer_types(), [0])
    live = model.parameters()
    params = [k for k in arrays if k.startswith("param/")]
    if len(live) != len(params):
        raise _error(path, f"the architecture has {len(live)} parameters; the file holds {len(params)}")
    _restore_into(path, model, spec, arrays)
    if "loss" in spec:
        model._loss = _make_component(path, spec["loss"], _public_subclasses(Loss), "loss")
    return model, spec, arrays


def _restore_into(path: Path, model: Module, spec: dict, arrays: dict[str, np.ndarray]) -> None:
    """Copy the file's parameters, buffers, keys, counters and shuffling state into ``model``."""
    for i, p in enumerate(model.parameters()):
        _copy_into(path, f"param/{i}", arrays, p.value)
    _restore_modules(path, model, spec["model"], arrays)
    if "shuffle" in spec:
        _restore_shuffle(path, model, spec["shuffle"])


def _read_validated(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The spec and arrays of a model file, every check that needs no layer already passed."""
    try:
        arrays = _read_arrays(path)
    except OSError as exc:
        raise _error(path, exc.strerror or "cannot be read") from None
    spec = _parse_spec(path, arrays)
    params = [k for k in arrays if k.startswith("param/")]
    if sorted(params) != sorted(f"param/{i}" for i in range(len(params))):
        raise _error(path, "parameter arrays must be named param/0, param/1, ... without gaps")
    for k in params:
        if arrays[k].dtype not in _ALLOWED_DTYPES:
            raise _error(path, f"array {k!r} has dtype {arrays[k].dtype}; parameters are float32 or float64")
    bound = max(_MIN_SIZE_BOUND, 16 * sum(arrays[k].size for k in params))
    known = layer_types()
    _check_tree(path, spec["model"], known, bound, [0])
    for key in ("loss", "optimizer"):
        if key in spec:
            _check_component(path, spec, key)
    return spec, arrays


def _check_component(path: Path, spec: dict, key: str) -> None:
    node = spec[key]
    base = Loss if key == "loss" else Optimizer
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        raise _error(path, f"the spec's {key!r} must be an object with a 'type' and a 'config'")
    _validate_type = node.get("type")
    known = _public_subclasses(base)
    if _validate_type not in known:
        raise _error(path, f"{key} type {_validate_type!r} is not a droplab.nn {key}")
    for k, v in node["config"].items():
        _check_json_value(path, v, f"{key} argument {k!r}")
    if key == "optimizer":
        _int_field(path, node, "iterations", "optimizer", 0, 2**62)
        if not isinstance(node.get("slots"), dict):
            raise _error(path, "the optimizer's 'slots' must be an object")


def _make_component(path: Path, node: dict, known: dict[str, type], key: str):
    try:
        return known[node["type"]](**node["config"])
    except (ValueError, TypeError) as exc:
        raise _error(path, f"the {key} cannot be rebuilt from its config: {exc}") from None


def load(path: Any) -> Module:
    """Read a model written by :func:`save` (``model.save``); no code in the file ever runs.

    The model comes back with its weights, buffers, mask keys and counters (so its next masks
    are the ones the saved model would have drawn), its train/eval mode and the loss it was fit
    with (so ``predict`` returns probabilities again).

    Args:
        path (str | os.PathLike): the file.

    Returns:
        The rebuilt model.

    Raises:
        ValueError: a missing, damaged or forged file, an unknown layer type, inconsistent
            shapes or dtypes, or a file from a newer format version; one line naming the file.
        TypeError: ``path`` is not a path.

    Example:
        >>> import tempfile, os
        >>> from droplab import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
        >>> nn.Sequential(nn.Dense(3, 2), seed=1).save(path)
        >>> nn.load(path)
        Sequential(
          Dense(in_features=3, out_features=2, l1=0.0, l2=0.0, bias_l1=0.0, bias_l2=0.0, init='he', dtype='float32')
        )
    """
    return read_state(path)[0]


def _restore_optimizer(path: Path, spec: dict, arrays: dict[str, np.ndarray], model: Module,
                       optimizer: Optimizer) -> None:
    node = spec["optimizer"]
    params = model.parameters()
    optimizer.iterations = int(node["iterations"])
    state: dict[int, dict[str, np.ndarray]] = {}
    for i_text, names in node["slots"].items():
        if not i_text.isdigit() or int(i_text) >= len(params) or not isinstance(names, list):
            raise _error(path, f"the optimizer's slots name parameter {i_text!r}, which the model does not have")
        p = params[int(i_text)]
        st = {}
        for sname in names:
            dest = np.empty_like(p.value)
            _copy_into(path, f"optim/{i_text}/{sname}", arrays, dest)
            st[str(sname)] = dest
        state[id(p)] = st
    optimizer._state = state


def load_optimizer(path: Any, model: Module) -> Optimizer:
    """The optimizer saved with ``model.save(path, optimizer=opt)``, bound to ``model``'s parameters.

    Args:
        path: the model file. model: the model loaded from it (``nn.load(path)``).

    Raises:
        ValueError: the file holds no optimizer, or its state does not fit ``model``.

    Example:
        >>> import tempfile, os
        >>> from droplab import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
        >>> model, opt = nn.Sequential(nn.Dense(3, 2), seed=1), nn.Adam(0.01)
        >>> model.save(path, optimizer=opt)
        >>> nn.load_optimizer(path, nn.load(path))
        Adam(lr=0.01, decay=0.0)
    """
    if not isinstance(model, Module):
        raise TypeError(_validate.message("nn.load_optimizer", "model", "a droplab Module", type(model).__name__))
    _, spec, arrays = read_state(path)
    path = _check_path("nn.load", path)
    if "optimizer" not in spec:
        raise _error(path, "it holds no optimizer (save it with model.save(path, optimizer=opt))")
    opt = _make_component(path, spec["optimizer"], _public_subclasses(Optimizer), "optimizer")
    _restore_optimizer(path, spec, arrays, model, opt)
    return opt


# ---------------------------------------------------------------------------- checkpoints
def _architecture(node: dict) -> dict:
    """A module tree without its state (keys, counters, mode): what must match to resume."""
    out = {"type": node["type"], "config": node["config"]}
    if node.get("children"):
        out["children"] = [_architecture(k) for k in node["children"]]
    return out


def write_checkpoint(path: Any, model: Module, optimizer: Optimizer, fit_state: dict,
                     best_params: list[np.ndarray] | None = None) -> None:
    """Write a training checkpoint atomically: the model, ``optimizer``'s state, ``fit``'s
    own state (``fit_state``: JSON) and the early-stopping best weights."""
    arrays = {f"best/{i}": a for i, a in enumerate(best_params or [])}
    write_state(path, model, optimizer=optimizer, extra={"fit": fit_state}, extra_arrays=arrays)


def read_checkpoint(path: Any, model: Module, optimizer: Optimizer) -> tuple[dict, list[np.ndarray] | None]:
    """Restore a checkpoint written by :func:`write_checkpoint` into ``model`` and ``optimizer``.

    The file is validated like any model file; its architecture, loss and optimizer
    (class and hyper-parameters) must be the ones given. Returns ``(fit_state, best_params)``.
    """
    path = _check_path("fit", path)
    spec, arrays = _read_validated(path)
    fit_state = (spec.get("extra") or {}).get("fit") if isinstance(spec.get("extra"), dict) else None
    if not isinstance(fit_state, dict) or "optimizer" not in spec:
        raise _error(path, "not a training checkpoint (no fit state or optimizer); "
                           "pass a checkpoint written by fit(..., checkpoint=PATH)")
    current, _ = _spec(model, None, {}, None)
    if _architecture(current["model"]) != _architecture(spec["model"]):
        raise _error(path, "the checkpoint's architecture differs from the model being fit; "
                           "resume with the model that wrote it")
    node = spec["optimizer"]
    mine = {"type": type(optimizer).__name__, "config": _ctor_config(optimizer, "optimizer")}
    if {"type": node["type"], "config": node["config"]} != mine:
        raise _error(path, f"the checkpoint was written with {node['type']}({node['config']}); fit was given "
                           f"{mine['type']}({mine['config']}); resume with the same optimizer settings")
    n_params = len(model.parameters())
    best_names = sorted(k for k in arrays if k.startswith("extra/best/"))
    if best_names and best_names != sorted(f"extra/best/{i}" for i in range(n_params)):
        raise _error(path, "the checkpoint's early-stopping weights do not match the model's parameters")
    _restore_into(path, model, spec, arrays)
    _restore_optimizer(path, spec, arrays, model, optimizer)
    best = None
    if best_names:
        best = []
        for i, p in enumerate(model.parameters()):
            dest = np.empty_like(p.value)
            _copy_into(path, f"extra/best/{i}", arrays, dest)
            best.append(dest)
    return fit_state, best


def set_generator_state(path: Any, g: np.random.Generator, state: Any) -> None:
    """Set ``g`` to a saved PCG64 ``bit_generator.state``; a bad state is a one-line error."""
    _set_generator_state(_check_path("fit", path), g, state, "the checkpoint's shuffling state")
