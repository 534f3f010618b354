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

Loading never trusts the file. In this order, before any layer is built or any array
allocated: the path must be a regular file (a FIFO or device is refused without blocking);
the zip's end record and directory are read (member count, sizes, compression method);
the spec is read with a bounded read and parsed (size and nesting capped); every member must
be declared by the spec (and every declared array present), with at most ``MAX_INFLATE_RATIO``
times its compressed size uncompressed; each ``.npy`` header is read (a few KB at most, never
the data) and must agree with the spec's shape and dtype (float32, float64, int64 or uint8:
object arrays, and so pickles, are refused without ever being unpickled) and with the member's
size in the zip directory. Then every module of the spec is checked: a known ``droplab.nn``
class, JSON arguments, and its real sizes. The loader knows what each layer's constructor
allocates (a Dense ``in x out`` weight, a Conv2d ``out x in x kh x kw`` kernel, a GRU's
``hidden x 3 hidden`` recurrent weight, BatchNorm's statistics...), so the parameters the
spec describes must be exactly the arrays the file holds, shape and dtype, and must fit the
budgets below; a layer's working memory per input row (a Conv2d's unfolded patch, a
DropConnect's per-example mask) is bounded too. Only then are the arrays read, each with a
bounded read of exactly its declared size (a zip directory that lies about a size cannot make
load read more), and the model built.

Limits (module constants; a file beyond them is refused with
:class:`~droplab.errors.ResourceLimitError`):

* ``MAX_PARAMETERS`` = 2**27 (134 million) parameter elements in the whole model;
* ``MAX_ARRAY_BYTES`` = 4 GiB of arrays in all (parameters, buffers, optimizer state, extras);
* ``MAX_MEMBERS`` = 100,000 arrays in the archive;
* ``MAX_SPEC_BYTES`` = 4 MiB of spec JSON, nested at most ``MAX_SPEC_NESTING`` = 144 levels, with
  at most ``MAX_SPEC_CONTAINERS`` = 2**18 objects and lists;
* ``MAX_DEPTH`` = 64 levels of modules inside modules, ``MAX_MODULES`` = 10,000 modules;
* ``MAX_ROW_ELEMENTS`` = 2**24 elements of one layer's working memory per input row;
* ``MAX_INFLATE_RATIO`` = 64: compressed members may expand at most 64 times (or to
  ``INFLATE_FLOOR`` = 8 MiB in all, whichever is more). droplab writes uncompressed files.

With these, a file of S bytes makes ``load`` hold at most about max(8 MiB, 64 S) of arrays
plus the model built from them: a 64 KB file, whatever it holds, stays far below 200 MB and
loads in about a second at most. Layers are built with one BLAS thread (as ``fit`` trains):
a recurrent layer's QR factorisations are up to 10 times slower when BLAS threads compete
with other work for the cores.

Every problem is one line naming the file: :class:`~droplab.errors.InvalidValueError` (a
``ValueError``) for damaged or forged content, ``ResourceLimitError`` (also a ``ValueError``)
for a budget, :class:`~droplab.errors.FileError` (an ``OSError``) for a path that cannot be
read or written (missing, a folder, no permission). Writes are atomic: a temporary file in the
same folder, ``fsync``, then ``os.replace``; a reader never sees half a file and an
interrupted save leaves the previous file intact.

A module's state outside its parameters is saved through two conventions: ``_buffers()``
returns a dict name -> the live array (load copies into it in place), and a random layer's
noise stream is its ``rng`` (a :class:`droplab._rng.NoiseStream`), saved as its ``state()``
(``"key"``: two 32-bit words, ``"counter"``) and restored with ``NoiseStream.from_state``.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from droplab._files import atomic_open
from droplab import __version__, _validate
from droplab._rng import NoiseStream
from droplab.errors import FileError, InvalidTypeError, InvalidValueError, ResourceLimitError
from droplab.nn.losses import Loss
from droplab.nn.module import Module, Parameter
from droplab.nn.optim import Optimizer

__all__ = ["FORMAT_VERSION", "save", "load", "load_optimizer", "layer_types", "write_state", "read_state",
           "write_checkpoint", "read_checkpoint", "set_generator_state", "ModelFileError",
           "MAX_PARAMETERS", "MAX_ARRAY_BYTES", "MAX_MEMBERS", "MAX_SPEC_BYTES", "MAX_SPEC_NESTING",
           "MAX_SPEC_CONTAINERS",
           "MAX_DEPTH", "MAX_MODULES", "MAX_ROW_ELEMENTS", "MAX_INFLATE_RATIO", "INFLATE_FLOOR"]

#: Version of the file layout; files from a newer version are refused with a clear error.
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}
_ARRAY_DTYPES = _ALLOWED_DTYPES | {np.dtype(np.int64), np.dtype(np.uint8)}
_DTYPE_NAMES = {d.name: d for d in _ARRAY_DTYPES}

#: Parameter elements in one model: the budget layer constructors use too (_validate).
MAX_PARAMETERS = _validate.MAX_PARAMETERS
#: Bytes of all the arrays of one file: parameters with Adam's two moments, the early-stopping
#: copy and buffers, in float64.
MAX_ARRAY_BYTES = 4 << 30
#: Arrays in one archive (a few per parameter: value, optimizer slots, best copy).
MAX_MEMBERS = 100_000
#: Bytes of the spec's JSON (a module takes 150 to 800 bytes with its arrays' entries).
MAX_SPEC_BYTES = 4 << 20
#: JSON objects and lists in the spec (each costs about 80 bytes of memory once parsed; a spec
#: of nothing but ``{}`` would otherwise take 100 MB). Counted as ``{`` and ``[`` characters.
MAX_SPEC_CONTAINERS = 1 << 18
#: Modules inside modules.
MAX_DEPTH = 64
#: Levels of JSON objects and lists in the spec: two per module level, plus the top and the
#: arguments' lists.
MAX_SPEC_NESTING = 2 * MAX_DEPTH + 16
#: Modules in one model.
MAX_MODULES = 10_000
#: Elements of one layer's working memory per input row or output position.
MAX_ROW_ELEMENTS = 1 << 24
#: Compressed members may expand this many times (deflate can reach 1032: a zip bomb).
MAX_INFLATE_RATIO = 64
#: ... or to this many bytes in all, whichever is more. It bounds what a small file can make
#: load do: an 8 MiB GRU's constructor (three QR factorisations of 830 x 830) takes about a second.
INFLATE_FLOOR = 8 << 20
#: A ``.npy`` header's text (numpy writes about 120 bytes; numpy's own reader stops at 10000).
_MAX_NPY_HEADER = 10_000
#: What the layers the loader has no size rule for (types added to ``droplab.nn`` later) may
#: allocate in all, counting the square of the product of their integer arguments.
_UNKNOWN_ELEMENTS = 1 << 22


class ModelFileError(InvalidValueError):
    """A model file that cannot be used (damaged, forged, or from a newer droplab)."""


class _Source:
    """The file being read and who is reading it: ``nn.load`` or ``fit``'s resume."""

    def __init__(self, path: Path, where: str = "nn.load") -> None:
        self.path = path
        self.where = where

    def error(self, problem: str, cls: type = ModelFileError) -> Exception:
        if self.where == "fit":
            head = f"fit: cannot resume from checkpoint={str(self.path)!r}"
        else:
            head = f"{self.where}: cannot use {str(self.path)!r}"
        return cls(f"{head}: {problem}.")


def _error(src: Any, problem: str, cls: type = ModelFileError) -> Exception:
    if not isinstance(src, _Source):
        src = _Source(Path(src))
    return src.error(problem, cls)


def _clip(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (an error message quoting a forged file's values)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a forged file's strings stay out of messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
    """Class name -> class of every module type a model file may contain: the public classes
    of ``droplab.nn`` and every variant of the dropout-family registry."""
    from droplab import family
    from droplab.nn.dropout import variant

    return {**_public_subclasses(Module), **{s.class_name: variant(s) for s in family.specs()}}


def _ctor_config(obj: Any, kind: str) -> dict[str, Any]:
    """Constructor arguments of an optimizer or loss, read back from its same-named attributes."""
    out = {}
    for name, prm in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            raise InvalidTypeError(_validate.message("save", kind, f"an object whose argument {name!r} is an attribute",
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
            raise InvalidValueError(f"save: {what} is {value}, which a model file cannot hold.")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, what) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    raise InvalidTypeError(f"save: {what} is a {type(value).__name__}, which a model file cannot hold "
                    "(JSON scalars and lists only).")


# ---------------------------------------------------------------------------------- save
def _module_spec(m: Module, known: dict[str, type], state: dict[str, np.ndarray], index: list[int]) -> dict:
    name = type(m).__name__
    if known.get(name) is not type(m):
        raise InvalidTypeError(_validate.message("save", "model", "built from droplab.nn layers only",
                                          f"a {name} module", "Only public droplab.nn classes can be saved."))
    i = index[0]
    index[0] += 1
    config = {k: _jsonable(v, f"{name}.config()[{k!r}]") for k, v in m.config().items() if k != "seed"}
    node: dict[str, Any] = {"type": name, "config": config, "training": bool(m.training)}
    rng = getattr(m, "rng", None)
    if isinstance(rng, NoiseStream):  # the layer's noise stream: {"key": [k0, k1], "counter": c}
        node.update(rng.state())
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
        raise InvalidTypeError(_validate.message("save", "optimizer", "a droplab.nn optimizer", name))
    position = {id(p): i for i, p in enumerate(params)}
    slots = {}
    for pid, st in opt._state.items():
        if pid not in position:
            raise InvalidValueError("save: `optimizer` holds state for parameters that are not this model's; "
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
        raise InvalidTypeError(_validate.message("save", "model", "a droplab Module", type(model).__name__))
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise InvalidTypeError(_validate.message("save", "optimizer", "a droplab optimizer or None",
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
            raise InvalidTypeError(f"save: array {k!r} has dtype {arr.dtype}; model files hold "
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
    """Write the archive atomically; an OS error names ``path``, never the temporary file."""
    if path.is_dir():
        raise FileError(f"save: cannot write {str(path)!r}: it is a folder; give a file name inside it.")
    try:
        with atomic_open(path) as f:
            np.savez(f, **arrays)
    except OSError as exc:
        if isinstance(exc, FileError) and exc.args:  # already names the path: keep its text, drop the rest
            err = FileError(str(exc.args[0]))
        else:
            reason = "it is a folder" if path.is_dir() else (exc.strerror or (str(exc) if not exc.filename else "")
                                                             or type(exc).__name__)
            err = FileError(f"save: cannot write {str(path)!r}: {reason}.")
        err.errno = exc.errno  # no filename: OSError would print "[Errno n] None: name" instead of the text
        raise err from None


def _check_path(where: str, path: Any, name: str = "path") -> Path:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidTypeError(_validate.message(where, name, "a file path (str or os.PathLike)", path))
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
        raise InvalidValueError(f"save: `extra` must be JSON (finite numbers, str, lists, dicts); {exc}.") from None
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
def _open_file(src: _Source) -> Any:
    """The file, opened for reading without following it into a FIFO or device (which could
    block or never end): a regular file or a one-line FileError."""
    try:
        fd = os.open(src.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise src.error("it is a folder, not a model file", FileError) from None
    except FileNotFoundError:
        raise src.error("no such file", FileError) from None
    except OSError as exc:
        raise src.error(exc.strerror or "it cannot be opened", FileError) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise src.error("it is a folder, not a model file", FileError)
        if not stat.S_ISREG(st.st_mode):
            raise src.error("not a regular file (a FIFO, socket or device is never read)", FileError)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f


def _zip_directory(src: _Source, f: Any, size: int) -> tuple[int, int]:
    """``(members, directory bytes)`` from the zip's end record, read before zipfile parses the
    directory (which it would hold in memory whatever its size)."""
    if size < 22:
        raise src.error("not a droplab model file (too short to be a zip archive)")
    tail_len = min(size, 22 + (1 << 16))
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        raise src.error("a damaged zip archive (no end record; truncated?)")
    entries, cd_size, cd_offset = struct.unpack("<10xHLL2x", tail[i:i + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:  # zip64
        loc = size - tail_len + i - 20
        if loc < 0:
            raise src.error("a damaged zip archive (bad zip64 end record)")
        f.seek(loc)
        sig, _, rec, _ = struct.unpack("<4sLQL", f.read(20))
        if sig != b"PK\x06\x07" or rec > size - 56:
            raise src.error("a damaged zip archive (bad zip64 end record)")
        f.seek(rec)
        sig, entries, cd_size = struct.unpack("<4s28xQQ8x", f.read(56))
        if sig != b"PK\x06\x06":
            raise src.error("a damaged zip archive (bad zip64 end record)")
    if entries > MAX_MEMBERS:
        raise src.error(f"it lists {entries} arrays; model files hold at most {MAX_MEMBERS}", ResourceLimitError)
    if cd_size > size:
        raise src.error("a damaged zip archive (its directory is larger than the file)")
    if cd_size > MAX_MEMBERS * 512:
        raise src.error(f"its zip directory takes {cd_size} bytes; model files' take at most {MAX_MEMBERS * 512}",
                        ResourceLimitError)
    return entries, cd_size


def _sniff(src: _Source, f: Any) -> None:
    """A clear word on files that are not zip archives at all."""
    f.seek(0)
    head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return
    if head.startswith(b"\x93NUMPY"):
        raise src.error("not a droplab model file (a single .npy array, not an .npz archive)")
    raise src.error("not a droplab model file (not a zip archive)")


def _members(src: _Source, f: Any) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    size = os.fstat(f.fileno()).st_size
    _sniff(src, f)
    _zip_directory(src, f, size)
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except Exception:  # noqa: BLE001 - zipfile raises many types on a damaged directory
        raise src.error("a damaged zip archive (truncated or corrupted directory)") from None
    if len(infos) > MAX_MEMBERS:
        raise src.error(f"it holds {len(infos)} arrays; model files hold at most {MAX_MEMBERS}", ResourceLimitError)
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name in out:
            raise src.error(f"the archive holds {_short(name)} twice")
        if not name.endswith(".npy"):
            raise src.error(f"unexpected member {_short(name)} (model files hold .npy arrays only)")
        if info.flag_bits & 0x1:
            raise src.error(f"member {_short(name)} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise src.error(f"member {_short(name)} uses compression method {info.compress_type}; model files "
                            "are stored or deflated")
        out[name] = info
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > max(INFLATE_FLOOR, MAX_INFLATE_RATIO * packed):
        raise src.error(f"its members would expand from {packed} to {total} bytes, more than {MAX_INFLATE_RATIO} "
                        "times (a zip bomb?)", ResourceLimitError)
    if "__spec__.npy" not in out:
        raise src.error("not a droplab model file (no '__spec__' entry)")
    return zf, out


def _read_bounded(stream: Any, n: int) -> bytes:
    """At most ``n`` bytes, read in pieces (a deflated member is inflated only that far)."""
    parts, left = [], n
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _npy_header(src: _Source, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, header bytes)`` of one member, reading only its header."""
    name = _short(info.filename[:-4])
    try:
        with zf.open(info) as f:
            head = _read_bounded(f, 12)
            if len(head) < 10 or head[:6] != b"\x93NUMPY":
                raise ValueError
            major = head[6]
            if major == 3:
                raise src.error(f"array {name} uses .npy format 3.0 (structured field names); model files use 1.0 "
                                "or 2.0")
            if major == 1:
                hlen, start = struct.unpack("<H", head[8:10])[0], 10
            elif major == 2 and len(head) == 12:
                hlen, start = struct.unpack("<I", head[8:12])[0], 12
            else:
                raise ValueError
            if hlen > _MAX_NPY_HEADER:
                raise src.error(f"array {name} has a {hlen}-byte header; numpy writes about 120")
            text = head[start:] + _read_bounded(f, hlen - (len(head) - start))
            if len(text) != hlen:
                raise ValueError
    except ModelFileError:
        raise
    except zipfile.BadZipFile:
        raise src.error(f"array {name} is damaged (bad zip entry or checksum)") from None
    except Exception:  # noqa: BLE001 - ValueError, EOFError, zlib.error and kin from a damaged stream
        raise src.error(f"array {name} is damaged (bad .npy header)") from None
    import io as _io

    fake = _io.BytesIO(b"\x93NUMPY" + bytes([major, 0]) + head[8:start] + text)
    try:
        np.lib.format.read_magic(fake)
        reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(fake, max_header_size=_MAX_NPY_HEADER)
    except Exception:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, TypeError on forged headers
        raise src.error(f"array {name} is damaged (bad .npy header)") from None
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise src.error(f"array {name} is damaged (its .npy header gives shape {_short(shape, 60)})")
    if dtype.hasobject:
        raise src.error(f"array {name} has dtype object; model files hold float32, float64, int64 or uint8 "
                        "arrays only (pickled objects are never loaded)")
    if dtype not in _ARRAY_DTYPES:
        raise src.error(f"array {name} has dtype {_short(dtype.str, 40)}; model files hold float32, float64, int64 "
                        "or uint8 arrays (native byte order) only")
    return tuple(shape), bool(fortran), dtype, start + hlen


def _read_member(src: _Source, zf: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, fortran: bool,
                 dtype: np.dtype, header: int) -> np.ndarray:
    """One member's data, read straight into its array: exactly its declared bytes, never more."""
    name = _short(info.filename[:-4])
    count = math.prod(shape)
    out = np.empty(count, dtype)
    view = memoryview(out).cast("B")
    try:
        with zf.open(info) as f:
            if len(_read_bounded(f, header)) != header:
                raise EOFError
            pos = 0
            while pos < view.nbytes:
                chunk = f.read(min(view.nbytes - pos, 1 << 20))
                if not chunk:
                    raise EOFError
                view[pos:pos + len(chunk)] = chunk
                pos += len(chunk)
            if f.read(1):  # also makes zipfile check the CRC-32 at the member's end
                raise EOFError
    except zipfile.BadZipFile:
        raise src.error(f"array {name} is damaged (bad zip entry or checksum)") from None
    except Exception:  # noqa: BLE001 - EOFError, zlib.error, OSError from a damaged stream
        raise src.error(f"array {name} is unreadable (truncated or damaged?)") from None
    return out.reshape(shape, order="F" if fortran else "C")


def _parse_json(src: _Source, raw: bytes) -> Any:
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > MAX_SPEC_CONTAINERS:
        raise src.error(f"its spec holds {containers} JSON objects and lists; model files' hold at most "
                        f"{MAX_SPEC_CONTAINERS}", ResourceLimitError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise src.error("the '__spec__' entry is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except RecursionError:
        raise src.error(f"the spec is nested too deeply (model files nest at most {MAX_SPEC_NESTING} levels of JSON "
                        "objects and lists)") from None
    except ValueError as exc:
        raise src.error(f"the '__spec__' entry is not valid JSON ({_clip(str(exc).splitlines()[0], 100)})") from None
    stack = [(value, 1)]
    while stack:  # an explicit stack: checking the depth must not itself recurse
        v, d = stack.pop()
        if d > MAX_SPEC_NESTING:
            raise src.error(f"the spec is nested too deeply (model files nest at most {MAX_SPEC_NESTING} levels of "
                            "JSON objects and lists)")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return value


def _check_json_value(src: _Source, value: Any, where: str, depth: int = 0) -> None:
    if depth > 8:
        raise src.error(f"{where} is nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise src.error(f"{where} is not finite")
        return
    if isinstance(value, list):
        for v in value:
            _check_json_value(src, v, where, depth + 1)
        return
    raise src.error(f"{where} must be a JSON scalar or list; found a {type(value).__name__}")


def _int_field(src: _Source, node: dict, key: str, where: str, low: int = 0, high: int | None = None) -> int:
    v = node[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v >= high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high})"
        raise src.error(f"{where}: {key!r} must be {allowed}; found {_short(v)}")
    return v


def _parse_spec(src: _Source, raw: bytes) -> dict:
    spec = _parse_json(src, raw)
    if not isinstance(spec, dict) or spec.get("format") != "droplab-model":
        raise src.error("not a droplab model file (its spec has no 'format': 'droplab-model')")
    version = spec.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise src.error(f"'format_version' must be a positive integer; found {_short(version)}")
    if version > FORMAT_VERSION:
        raise src.error(f"it was written in model-file format {_short(version, 30)} (droplab "
                        f"{_short(spec.get('droplab', '?'), 30)[1:-1] if isinstance(spec.get('droplab'), str) else '?'}"
                        f"), newer than this droplab {__version__} reads (format {FORMAT_VERSION}); "
                        "upgrade droplab to load it")
    for key in ("model", "arrays"):
        if not isinstance(spec.get(key), dict):
            raise src.error(f"the spec has no {key!r} object")
    return spec


_PREFIXES = ("param/", "buffer/", "optim/", "extra/")


def _declared(src: _Source, spec: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The spec's ``arrays``: name -> (shape, dtype), each checked and the total within budget."""
    out = {}
    total = 0
    for name, d in spec["arrays"].items():
        if not name.startswith(_PREFIXES):
            raise src.error(f"the spec declares an array named {_short(name)}; model files hold param/, buffer/, "
                            "optim/ and extra/ arrays")
        shape = d.get("shape") if isinstance(d, dict) else None
        dtype = _DTYPE_NAMES.get(d.get("dtype")) if isinstance(d, dict) and isinstance(d.get("dtype"), str) else None
        if (not isinstance(shape, list) or len(shape) > 32 or dtype is None
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape)):
            raise src.error(f"the spec's entry for array {_short(name)} must be a shape (a list of at most 32 "
                            f"non-negative integers) and a dtype (float32, float64, int64 or uint8); found {_short(d)}")
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if total > MAX_ARRAY_BYTES:
            raise src.error(f"its arrays would take more than {MAX_ARRAY_BYTES} bytes (array {_short(name)} "
                            f"alone: {nbytes})", ResourceLimitError)
        out[name] = (tuple(shape), dtype)
    return out


def _read_archive(src: _Source) -> tuple[dict, dict[str, np.ndarray]]:
    """The spec and every array of a model file, each checked before it is read (see the module
    docstring for the order). Arrays are read only once the spec and the tree fit the budgets."""
    with _open_file(src) as f:
        zf, infos = _members(src, f)
        # the spec first: its header, a bounded read, the JSON
        sinfo = infos.pop("__spec__.npy")
        shape, _, dtype, header = _npy_header(src, zf, sinfo)
        if dtype != np.uint8 or len(shape) != 1:
            raise src.error("the '__spec__' entry must be UTF-8 JSON bytes (a 1-D uint8 array)")
        if shape[0] > MAX_SPEC_BYTES:
            raise src.error(f"its spec takes {shape[0]} bytes; model files' take at most {MAX_SPEC_BYTES}",
                            ResourceLimitError)
        if sinfo.file_size != header + shape[0]:
            raise src.error("the '__spec__' entry's size does not match its header (damaged?)")
        raw = _read_member(src, zf, sinfo, shape, False, dtype, header).tobytes()
        spec = _parse_spec(src, raw)
        declared = _declared(src, spec)
        # every member declared, every declared array present
        for member, info in infos.items():
            if member[:-4] not in declared:
                _npy_header(src, zf, info)  # its own complaint first (object dtype: a pickle), a few KB read
                raise src.error(f"unexpected array {_short(member[:-4])} (the spec does not declare it)")
        for name in declared:
            if name + ".npy" not in infos:
                raise src.error(f"missing array {_short(name)} (the spec declares it; the archive does not hold it)")
        # the zip directory's sizes against the declared shapes, before any data is inflated: the
        # member is the data plus a .npy header of 10 to 12 + _MAX_NPY_HEADER bytes
        for name, (shape, dtype) in declared.items():
            info, nbytes = infos[name + ".npy"], math.prod(shape) * dtype.itemsize
            if not 10 <= info.file_size - nbytes <= 12 + _MAX_NPY_HEADER:
                _npy_header(src, zf, info)  # its own complaint first (object dtype: a pickle), a few KB read
                raise src.error(f"array {_short(name)} takes {info.file_size} bytes in the archive; its shape "
                                f"{shape} and dtype {dtype} need {nbytes} and a header")
        # then each .npy header (a few KB inflated at most) against the spec, and the exact sizes
        headers = {}
        for name, (shape, dtype) in declared.items():
            info = infos[name + ".npy"]
            got = _npy_header(src, zf, info)
            if got[0] != shape or got[2] != dtype:
                raise src.error(f"array {_short(name)} has shape {got[0]} and dtype {got[2]}; the spec declares "
                                f"shape {shape} and dtype {dtype}")
            if info.file_size != got[3] + math.prod(shape) * dtype.itemsize:
                raise src.error(f"array {_short(name)} takes {info.file_size} bytes in the archive; its shape "
                                f"{shape} and dtype {dtype} need {got[3] + math.prod(shape) * dtype.itemsize}")
            headers[name] = got
        _check_model(src, spec, declared)
        arrays = {name: _read_member(src, zf, infos[name + ".npy"], *headers[name][:3], headers[name][3])
                  for name in declared}
    return spec, arrays


# ---------------------------------------------------------------------------- size rules
class _Sizes:
    """What one layer's constructor allocates, and the working memory it needs per input row.

    ``params``: ``(shape, dtype name or None for either float)`` of the parameters the
    constructor creates itself (its own, then those of children it builds itself), in
    ``parameters()`` order. ``buffers``: elements of its other state. ``row``: elements of
    working memory per input row (or output position), with what they are, for the message.
    """

    def __init__(self, params=(), buffers: int = 0, row: int = 0, row_what: str = "") -> None:
        self.params = list(params)
        self.buffers = buffers
        self.row = row
        self.row_what = row_what


class _Config:
    """A spec node's arguments, read with the constructor's defaults; a bad one is an error
    before anything is built."""

    def __init__(self, src: _Source, where: str, config: dict, cls: type) -> None:
        self.src, self.where, self.config = src, where, config
        self.defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                         if p.default is not inspect.Parameter.empty}

    def _get(self, key: str) -> Any:
        if key in self.config:
            return self.config[key]
        if key in self.defaults:
            return self.defaults[key]
        raise self.src.error(f"{self.where} cannot be rebuilt from its config: it has no {key!r}")

    def _bad(self, key: str, allowed: str, value: Any) -> Exception:
        return self.src.error(f"{self.where} cannot be rebuilt from its config: `{key}` must be {allowed}; "
                              f"got {key}={_short(value)}")

    def int(self, key: str, low: int = 1) -> int:
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise self._bad(key, "a positive integer" if low == 1 else f"an integer >= {low}", v)
        return v

    def pair(self, key: str, low: int = 1) -> tuple[int, int]:
        v = self._get(key)
        items = [v, v] if isinstance(v, int) else v
        if (isinstance(v, bool) or not isinstance(items, (list, tuple)) or len(items) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= low for x in items)):
            raise self._bad(key, f"an integer >= {low} or a pair of them", v)
        return items[0], items[1]

    def dtype(self) -> str:
        v = self._get("dtype")
        try:  # a file's dtype is a name; the constructor's default is a numpy type
            dt = np.dtype(v) if (isinstance(v, str) and len(v) < 40) or "dtype" not in self.config else None
        except TypeError:
            dt = None
        if dt not in _ALLOWED_DTYPES:
            raise self._bad("dtype", "float32 or float64", v)
        return dt.name

    def choice(self, key: str) -> Any:
        return self._get(key)

    def flag(self, key: str) -> bool:
        v = self._get(key)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false", v)
        return v


def _dense(c: _Config) -> _Sizes:
    i, o, dt = c.int("in_features"), c.int("out_features"), c.dtype()
    return _Sizes([((i, o), dt), ((o,), dt)], row=i + o, row_what="in_features + out_features")


def _conv2d(c: _Config) -> _Sizes:
    i, o, dt = c.int("in_channels"), c.int("out_channels"), c.dtype()
    kh, kw = c.pair("kernel_size")
    c.pair("stride")
    ph, pw = c.pair("padding", 0)
    return _Sizes([((o, i, kh, kw), dt), ((o,), dt)], row=i * max(kh * kw, (2 * ph + 1) * (2 * pw + 1)),
                  row_what="in_channels x kernel area (or padded map)")


def _conv1d(c: _Config) -> _Sizes:
    i, o, dt = c.int("in_channels"), c.int("out_channels"), c.dtype()
    k = c.int("kernel_size")
    c.int("stride")
    c.int("dilation")
    p = c.int("padding", 0)
    return _Sizes([((o, i, k), dt)] + [((o,), dt)] * c.flag("bias"), row=i * max(k, 2 * p + 1),
                  row_what="in_channels x kernel size (or padded length)")


def _pool1d(c: _Config) -> _Sizes:
    k = c.int("kernel_size")
    if c.choice("stride") is not None:
        c.int("stride")
    return _Sizes(row=k, row_what="kernel size")


def _pool2d(c: _Config) -> _Sizes:
    kh, kw = c.pair("kernel_size")
    if c.choice("stride") is not None:
        c.pair("stride")
    return _Sizes(row=kh * kw, row_what="kernel area")


def _batchnorm(size_name: str) -> Callable[[_Config], _Sizes]:
    def rule(c: _Config) -> _Sizes:
        f, dt = c.int(size_name), c.dtype()
        return _Sizes([((f,), dt), ((f,), dt)], buffers=2 * f + 1, row=f, row_what=size_name)
    return rule


def _recurrent(gates: int, biases: int) -> Callable[[_Config], _Sizes]:
    def rule(c: _Config) -> _Sizes:
        f, h, dt = c.int("input_size"), c.int("hidden_size"), c.dtype()
        k = gates * h
        directions = 2 if c.flag("bidirectional") else 1  # a reverse set of the same parameters
        what = "input_size + gates x hidden_size"
        return _Sizes(([((f, k), dt), ((h, k), dt)] + [((k,), dt)] * biases) * directions,
                      row=directions * (f + 2 * k), row_what=what if directions == 1 else f"2 directions x ({what})")
    return rule


def _dropconnect(c: _Config) -> _Sizes:
    i, o, dt = c.int("in_features"), c.int("out_features"), c.dtype()
    row, what = i + o, "in_features + out_features"
    if c.choice("per") == "example":
        row, what = i * o, "in_features x out_features (per='example')"
    if c.choice("inference") == "gaussian":
        samples = c.int("samples")
        if samples * o > row:
            row, what = samples * o, "samples x out_features (inference='gaussian')"
    return _Sizes([((i, o), dt), ((o,), dt)], row=row, row_what=what)


def _concrete(c: _Config) -> _Sizes:
    return _Sizes([((1,), None)])


def _nothing(c: _Config) -> _Sizes:
    return _Sizes()


#: Class name -> what its constructor allocates. Every public layer of droplab.nn has one (a
#: test checks it); a layer added later without one is held to ``_UNKNOWN_ELEMENTS``.
_SIZE_RULES: dict[str, Callable[[_Config], _Sizes]] = {
    "Dense": _dense, "Conv1d": _conv1d, "Conv2d": _conv2d, "MaxPool1d": _pool1d, "AvgPool1d": _pool1d,
    "MaxPool2d": _pool2d, "AvgPool2d": _pool2d,
    "BatchNorm1d": _batchnorm("features"), "BatchNorm2d": _batchnorm("channels"),
    "RNN": _recurrent(1, 1), "GRU": _recurrent(3, 2),
    "DropConnect": _dropconnect, "ConcreteDropout": _concrete,
    **{name: _nothing for name in (
        "Sequential", "Residual", "Flatten", "GlobalAvgPool1d", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "SELU",
        "Softmax",
        "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "GaussianDropout", "AlphaDropout", "DropBlock2d",
        "DropPath", "LockedDropout")},
}
#: Children a constructor builds itself (not passed as arguments): by position.
_SELF_BUILT = {"DropConnect": {0}}


class _Plan:
    """What building the spec's tree will allocate, gathered while checking it."""

    def __init__(self) -> None:
        self.params: list[tuple[tuple[int, ...], str | None, str]] = []  # (shape, dtype, where)
        self.elements = 0  # parameter elements the constructors allocate
        self.unknown = 0  # the estimate for layers without a size rule
        self.exact = True  # every layer has a size rule: the parameter list is exact
        self.modules = 0


def _check_tree(src: _Source, node: Any, known: dict[str, type], plan: _Plan, depth: int = 0,
                built: bool = True) -> None:
    """Validate one module node (and its children) without building anything, adding what its
    constructor will allocate to ``plan``. ``built``: whether load builds this node itself (a
    child its parent's constructor builds is only checked)."""
    where = f"module {plan.modules}"
    plan.modules += 1
    if depth > MAX_DEPTH:
        raise src.error(f"the architecture nests modules more than {MAX_DEPTH} deep", ResourceLimitError)
    if plan.modules > MAX_MODULES:
        raise src.error(f"the architecture has more than {MAX_MODULES} modules", ResourceLimitError)
    if not isinstance(node, dict) or not isinstance(node.get("type"), str) or not isinstance(node.get("config"), dict):
        raise src.error(f"{where} must be an object with a 'type' name and a 'config' object")
    name = node["type"]
    if name not in known:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise src.error(_validate.message(where, "type", "a droplab.nn layer", shown,
                                          "Model files may only name droplab.nn classes.").rstrip("."))
    where = f"{where} ({name})"
    cls = known[name]
    for k, v in node["config"].items():
        _check_json_value(src, v, f"{where} argument {_short(k, 40)}")
    if "key" in node:
        key = node["key"]
        if (not isinstance(key, list) or len(key) != 2
                or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 2**32 for k in key)):
            raise src.error(f"{where}: 'key' must be two integers in [0, 2**32); found {_short(key)}")
    if "counter" in node:
        _int_field(src, node, "counter", where, 0, 2**62)
    buffers = node.get("buffers", [])
    if not isinstance(buffers, list) or not all(isinstance(b, str) for b in buffers):
        raise src.error(f"{where}: 'buffers' must be a list of names")
    kids = node.get("children", [])
    if not isinstance(kids, list):
        raise src.error(f"{where}: 'children' must be a list")
    refs = _check_child_args(src, node, cls, where, len(kids))
    if built:
        rule = _SIZE_RULES.get(name)
        if rule is None:
            plan.exact = False
            size = 1
            for v in node["config"].values():
                for item in (v if isinstance(v, list) else [v]):
                    if isinstance(item, int) and not isinstance(item, bool) and item > 1:
                        size = min(size * item, 1 << 62)
            plan.unknown += size * size
            if plan.unknown > _UNKNOWN_ELEMENTS:
                raise src.error(f"{where} has integer arguments multiplying to {size}; a layer type without a size "
                                f"rule in the loader may use at most {math.isqrt(_UNKNOWN_ELEMENTS)} "
                                "(its square, in all)", ResourceLimitError)
        else:
            sizes = rule(_Config(src, where, node["config"], cls))
            for shape, dt in sizes.params:
                n = math.prod(shape)
                plan.elements += n
                plan.params.append((shape, dt, where))
                if plan.elements > MAX_PARAMETERS:
                    raise src.error(f"{where} has a parameter of shape {shape}, which takes the model past "
                                    f"{MAX_PARAMETERS} parameters", ResourceLimitError)
            if sizes.row > MAX_ROW_ELEMENTS:
                raise src.error(f"{where} would need {sizes.row} elements of working memory per input row "
                                f"({sizes.row_what}); the limit is {MAX_ROW_ELEMENTS}", ResourceLimitError)
    if refs & _SELF_BUILT.get(name, set()):
        raise src.error(f"{where}: 'child_args' passes a child the constructor builds itself")
    for j, kid in enumerate(kids):  # load builds exactly the children passed as arguments
        _check_tree(src, kid, known, plan, depth + 1, built and j in refs)


def _check_child_args(src: _Source, node: dict, cls: type, where: str, n_kids: int) -> set[int]:
    """The children passed to the constructor (``child_args``), checked against its signature."""
    params = inspect.signature(cls.__init__).parameters
    child_args = node.get("child_args", {})
    if not isinstance(child_args, dict):
        raise src.error(f"{where}: 'child_args' must be an object")
    used: set[int] = set()
    for name, ref in child_args.items():
        star = name.startswith("*")
        prm = params.get(name[1:] if star else name)
        refs = ref if star else [ref]
        kind_ok = prm is not None and (prm.kind is prm.VAR_POSITIONAL if star else
                                       prm.kind in (prm.POSITIONAL_OR_KEYWORD, prm.KEYWORD_ONLY))
        if (not kind_ok or name in node["config"] or not isinstance(refs, list)
                or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < n_kids and r not in used
                           for r in refs) or len(set(refs)) != len(refs)):
            raise src.error(f"{where}: 'child_args' entry {_short(name, 40)} does not fit the constructor or the "
                            "children")
        used.update(refs)
    return used


def _check_model(src: _Source, spec: dict, declared: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """The tree, its sizes against the budgets and against the arrays the file holds; the loss
    and optimizer entries. Nothing is built."""
    params = sorted(k for k in declared if k.startswith("param/"))
    if params != sorted(f"param/{i}" for i in range(len(params))):
        raise src.error("parameter arrays must be named param/0, param/1, ... without gaps")
    for k in params:
        if declared[k][1] not in _ALLOWED_DTYPES:
            raise src.error(f"array {k!r} has dtype {declared[k][1]}; parameters are float32 or float64")
    plan = _Plan()
    _check_tree(src, spec["model"], layer_types(), plan)
    if plan.exact:
        for i, (shape, dt, where) in enumerate(plan.params):
            if i >= len(params):
                raise src.error(f"{where} makes parameter {i} with shape {shape}; the file holds only {len(params)} "
                                "parameters")
            got_shape, got_dtype = declared[f"param/{i}"]
            if got_shape != shape or (dt is not None and got_dtype.name != dt):
                raise src.error(f"{where} makes parameter {i} with shape {shape} and dtype {dt or 'float'}; the file "
                                f"holds shape {got_shape} and dtype {got_dtype}")
        if len(plan.params) != len(params):
            raise src.error(f"the architecture has {len(plan.params)} parameters; the file holds {len(params)}")
    else:
        held = sum(math.prod(declared[k][0]) for k in params)
        if sum(math.prod(s) for s, _, _ in plan.params) > held:
            raise src.error(f"the architecture makes more parameters than the file's {held}")
    for key in ("loss", "optimizer"):
        if key in spec:
            _check_component(src, spec, key)


def _build(src: _Source, node: dict, known: dict[str, type], count: list[int]) -> Module:
    """Build one checked node: its constructor-argument children first, then the module (a
    child the constructor builds itself is left to it)."""
    i = count[0]
    count[0] += 1
    cls = known[node["type"]]
    kids = node.get("children", [])
    child_args = node.get("child_args", {})
    built: dict[int, Module] = {}
    refs: set[int] = set()
    for ref in child_args.values():
        refs.update(ref if isinstance(ref, list) else [ref])
    for j, kid in enumerate(kids):
        if j in refs:
            built[j] = _build(src, kid, known, count)
        else:
            count[0] += sum(1 for _ in _walk(kid))
    args: list[Module] = []
    kwargs = dict(node["config"])
    for name, ref in child_args.items():
        if name.startswith("*"):
            args.extend(built[r] for r in ref)
        else:
            kwargs[name] = built[ref]
    try:
        return cls(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise src.error(f"module {i} ({node['type']}) cannot be rebuilt from its config: "
                        f"{_clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}") from None


def _walk(node: dict):
    yield node
    for k in node.get("children", []):
        yield from _walk(k)


def _restore_modules(src: _Source, model: Module, tree: dict, arrays: dict[str, np.ndarray]) -> None:
    nodes = list(_walk(tree))
    mods = list(model.modules())
    if len(mods) != len(nodes):
        raise src.error(f"the architecture rebuilds into {len(mods)} modules; the spec lists {len(nodes)}")
    for i, (m, n) in enumerate(zip(mods, nodes)):
        where = f"module {i} ({n['type']})"
        if type(m).__name__ != n["type"]:
            raise src.error(f"{where} rebuilds as a {type(m).__name__}")
        if "key" in n or "counter" in n:
            if not isinstance(getattr(m, "rng", None), NoiseStream):
                what = "a mask key" if "key" in n else "a call counter"
                raise src.error(f"{where} has {what} but the layer has no randomness")
            if "key" not in n:
                raise src.error(f"{where} has a call counter but no mask key")
            m.rng = NoiseStream.from_state({"key": n["key"], "counter": n.get("counter", 0)})
        live = _module_buffers(m)
        if sorted(live) != sorted(n.get("buffers", [])):
            raise src.error(f"{where} has buffers {_short(sorted(live))}; the file holds "
                            f"{_short(sorted(n.get('buffers', [])))}")
        for bname, value in live.items():
            current = getattr(m, bname, None)
            if isinstance(current, np.ndarray):
                _copy_into(src, f"buffer/{i}/{bname}", arrays, current)
            else:  # a number kept as an attribute (e.g. a batch count)
                dest = np.empty_like(value)
                _copy_into(src, f"buffer/{i}/{bname}", arrays, dest)
                if dest.ndim != 0 or not isinstance(current, (numbers.Number, np.generic)):
                    raise src.error(f"{where}: buffer {bname!r} is not an attribute of the layer")
                setattr(m, bname, type(current)(dest.item()) if isinstance(current, numbers.Number) else dest[()])
        m.training = bool(n.get("training", True))


def _copy_into(src: _Source, name: str, arrays: dict[str, np.ndarray], dest: np.ndarray) -> None:
    if name not in arrays:
        raise src.error(f"missing array {_short(name)}")
    a = arrays[name]
    if a.shape != dest.shape or a.dtype != dest.dtype:
        raise src.error(f"array {_short(name)} has shape {a.shape} and dtype {a.dtype}; "
                        f"the layer expects shape {dest.shape} and dtype {dest.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise src.error(f"array {_short(name)} holds NaN or infinite values")
    np.copyto(dest, a)


def read_state(path: Any) -> tuple[Module, dict, dict[str, np.ndarray]]:
    """Load a model file: ``(model, spec, arrays)``, the spec and arrays already validated.

    :func:`load` and ``fit``'s resume are built on this.
    """
    from droplab.nn.train import _one_blas_thread

    src = _Source(_check_path("nn.load", path))
    spec, arrays = _read_validated(src)
    with _one_blas_thread():  # a recurrent layer's QR: 1.3 s with one thread, 18 s with two on a busy machine
        model = _build(src, spec["model"], layer_types(), [0])
    live = model.parameters()
    params = [k for k in arrays if k.startswith("param/")]
    if len(live) != len(params):
        raise src.error(f"the architecture has {len(live)} parameters; the file holds {len(params)}")
    _restore_into(src, model, spec, arrays)
    if "loss" in spec:
        model._loss = _make_component(src, spec["loss"], _public_subclasses(Loss), "loss")
    return model, spec, arrays


def _restore_into(src: _Source, model: Module, spec: dict, arrays: dict[str, np.ndarray]) -> None:
    """Copy the file's parameters, buffers, keys, counters and shuffling state into ``model``."""
    for i, p in enumerate(model.parameters()):
        _copy_into(src, f"param/{i}", arrays, p.value)
    _restore_modules(src, model, spec["model"], arrays)
    if "shuffle" in spec:
        _restore_shuffle(src, model, spec["shuffle"])


def _read_validated(src: _Source) -> tuple[dict, dict[str, np.ndarray]]:
    """The spec and arrays of a model file, every check that needs no layer already passed."""
    try:
        return _read_archive(src)
    except (FileError, InvalidValueError):
        raise
    except MemoryError:
        raise src.error("it needs more memory than this machine has", ResourceLimitError) from None
    except OSError as exc:
        raise src.error(exc.strerror or "it cannot be read", FileError) from None


def _check_component(src: _Source, spec: dict, key: str) -> None:
    node = spec[key]
    base = Loss if key == "loss" else Optimizer
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        raise src.error(f"the spec's {key!r} must be an object with a 'type' and a 'config'")
    kind = node.get("type")
    known = _public_subclasses(base)
    if kind not in known:
        raise src.error(f"{key} type {_short(kind, 60)} is not a droplab.nn {key}")
    for k, v in node["config"].items():
        _check_json_value(src, v, f"{key} argument {_short(k, 40)}")
    if key == "optimizer":
        _int_field(src, node, "iterations", "optimizer", 0, 2**62)
        if not isinstance(node.get("slots"), dict):
            raise src.error("the optimizer's 'slots' must be an object")


def _make_component(src: _Source, node: dict, known: dict[str, type], key: str):
    try:
        return known[node["type"]](**node["config"])
    except (ValueError, TypeError) as exc:
        raise src.error(f"the {key} cannot be rebuilt from its config: "
                        f"{_clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}") from None


def load(path: Any) -> Module:
    """Read a model written by :func:`save` (``model.save``); no code in the file ever runs.

    The model comes back with its weights, buffers, mask keys and counters (so its next masks
    are the ones the saved model would have drawn), its train/eval mode and the loss it was fit
    with (so ``predict`` returns probabilities again).

    The file is checked before anything is built or allocated (the module docstring gives the
    order): a hostile or damaged file is refused with one line, never a traceback, a hang or
    gigabytes of memory. Limits: at most ``MAX_PARAMETERS`` (2**27) parameters,
    ``MAX_ARRAY_BYTES`` (4 GiB) of arrays, ``MAX_MEMBERS`` (100,000) arrays, a spec of at most
    ``MAX_SPEC_BYTES`` (4 MiB) nested at most ``MAX_SPEC_NESTING`` (144) levels with at most
    ``MAX_SPEC_CONTAINERS`` (2**18) objects and lists, modules nested
    at most ``MAX_DEPTH`` (64) deep and ``MAX_MODULES`` (10,000) in all, ``MAX_ROW_ELEMENTS``
    (2**24) elements of a layer's working memory per input row, and compressed members that
    expand at most ``MAX_INFLATE_RATIO`` (64) times (or to 8 MiB in all).

    Args:
        path (str | os.PathLike): the file.

    Returns:
        The rebuilt model.

    Raises:
        InvalidValueError: (a ``ValueError``) a damaged or forged file, an unknown layer type,
            inconsistent shapes or dtypes, or a file from a newer format version; one line
            naming the file.
        ResourceLimitError: (a ``ValueError``) a file beyond the limits above.
        FileError: (an ``OSError``) no such file, a folder, a FIFO or device, no permission.
        InvalidTypeError: ``path`` is not a path.

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


def _restore_optimizer(src: _Source, spec: dict, arrays: dict[str, np.ndarray], model: Module,
                       optimizer: Optimizer) -> None:
    node = spec["optimizer"]
    params = model.parameters()
    optimizer.iterations = int(node["iterations"])
    state: dict[int, dict[str, np.ndarray]] = {}
    for i_text, names in node["slots"].items():
        if not i_text.isdigit() or int(i_text) >= len(params) or not isinstance(names, list):
            raise src.error(f"the optimizer's slots name parameter {_short(i_text, 40)}, which the model does not "
                            "have")
        p = params[int(i_text)]
        st = {}
        for sname in names:
            dest = np.empty_like(p.value)
            _copy_into(src, f"optim/{i_text}/{sname}", arrays, dest)
            st[str(sname)] = dest
        state[id(p)] = st
    optimizer._state = state


def load_optimizer(path: Any, model: Module) -> Optimizer:
    """The optimizer saved with ``model.save(path, optimizer=opt)``, bound to ``model``'s parameters.

    Args:
        path: the model file. model: the model loaded from it (``nn.load(path)``).

    Raises:
        InvalidValueError: the file holds no optimizer, or its state does not fit ``model``;
            and every error of :func:`load`.

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
        raise InvalidTypeError(_validate.message("nn.load_optimizer", "model", "a droplab Module",
                                                 type(model).__name__))
    src = _Source(_check_path("nn.load", path))
    spec, arrays = _read_validated(src)
    if "optimizer" not in spec:
        raise src.error("it holds no optimizer (save it with model.save(path, optimizer=opt))")
    opt = _make_component(src, spec["optimizer"], _public_subclasses(Optimizer), "optimizer")
    _restore_optimizer(src, spec, arrays, model, opt)
    return opt


# ---------------------------------------------------------------------------- checkpoints
def _architecture(node: dict, known: dict[str, type]) -> dict:
    """A module tree without its state (keys, counters, mode): what must match to resume. A
    dropout layer's ``p`` is state too: rate schedules (``LinearRamp``, ``EarlyDropout``)
    change it while fit runs."""
    config = node["config"]
    cls = known.get(node["type"])
    if cls is not None and getattr(cls, "is_dropout", False):
        config = {k: v for k, v in config.items() if k != "p"}
    out = {"type": node["type"], "config": config}
    if node.get("children"):
        out["children"] = [_architecture(k, known) for k in node["children"]]
    return out


def _first_difference(a: dict, b: dict) -> str:
    """Where two architectures first differ, for the message."""
    flat_a, flat_b = list(_walk(a)), list(_walk(b))
    for i, (x, y) in enumerate(zip(flat_a, flat_b)):
        if x["type"] != y["type"] or x["config"] != y["config"]:
            return (f"module {i} is {x['type']}{_short(x['config'], 120)} in the checkpoint and "
                    f"{y['type']}{_short(y['config'], 120)} in the model")
    return f"the checkpoint has {len(flat_a)} modules and the model {len(flat_b)}"


def write_checkpoint(path: Any, model: Module, optimizer: Optimizer, fit_state: dict,
                     best_params: list[np.ndarray] | None = None) -> None:
    """Write a training checkpoint atomically: the model, ``optimizer``'s state, ``fit``'s
    own state (``fit_state``: JSON) and the early-stopping best weights."""
    arrays = {f"best/{i}": a for i, a in enumerate(best_params or [])}
    write_state(path, model, optimizer=optimizer, extra={"fit": fit_state}, extra_arrays=arrays)


def read_checkpoint(path: Any, model: Module, optimizer: Optimizer) -> tuple[dict, list[np.ndarray] | None]:
    """Restore a checkpoint written by :func:`write_checkpoint` into ``model`` and ``optimizer``.

    The file is validated like any model file; its architecture, loss and optimizer
    (class and hyper-parameters) must be the ones given. A dropout layer's ``p`` is not part
    of the architecture: it is restored from the checkpoint, as a rate schedule left it, so a
    run with ``LinearRamp`` or ``EarlyDropout`` resumes bit-identically. Returns
    ``(fit_state, best_params)``. Errors read ``fit: cannot resume from checkpoint=...``.
    """
    src = _Source(_check_path("fit", path, "checkpoint"), "fit")
    spec, arrays = _read_validated(src)
    fit_state = (spec.get("extra") or {}).get("fit") if isinstance(spec.get("extra"), dict) else None
    if not isinstance(fit_state, dict) or "optimizer" not in spec:
        raise src.error("not a training checkpoint (no fit state or optimizer); "
                        "pass a checkpoint written by fit(..., checkpoint=PATH)")
    known = layer_types()
    current, _ = _spec(model, None, {}, None)
    theirs, mine = _architecture(spec["model"], known), _architecture(current["model"], known)
    if theirs != mine:
        raise src.error(f"the checkpoint's architecture differs from the model being fit "
                        f"({_first_difference(theirs, mine)}); resume with the model that wrote it")
    node = spec["optimizer"]
    mine_opt = {"type": type(optimizer).__name__, "config": _ctor_config(optimizer, "optimizer")}
    if {"type": node["type"], "config": node["config"]} != mine_opt:
        raise src.error(f"the checkpoint was written with {node['type']}({_short(node['config'], 200)}); fit was "
                        f"given {mine_opt['type']}({_short(mine_opt['config'], 200)}); resume with the same "
                        "optimizer settings")
    n_params = len(model.parameters())
    best_names = sorted(k for k in arrays if k.startswith("extra/best/"))
    if best_names and best_names != sorted(f"extra/best/{i}" for i in range(n_params)):
        raise src.error("the checkpoint's early-stopping weights do not match the model's parameters")
    _restore_into(src, model, spec, arrays)
    for i, (m, n) in enumerate(zip(model.modules(), _walk(spec["model"]))):
        if m.is_dropout and "p" in n["config"] and "p" in m.config():
            try:
                m.p = n["config"]["p"]
            except (ValueError, TypeError):
                raise src.error(f"module {i} ({n['type']}) has p={_short(n['config']['p'], 40)}, which the layer "
                                "refuses") from None
    _restore_optimizer(src, spec, arrays, model, optimizer)
    best = None
    if best_names:
        best = []
        for i, p in enumerate(model.parameters()):
            dest = np.empty_like(p.value)
            _copy_into(src, f"extra/best/{i}", arrays, dest)
            best.append(dest)
    return fit_state, best


def set_generator_state(path: Any, g: np.random.Generator, state: Any) -> None:
    """Set ``g`` to a saved PCG64 ``bit_generator.state``; a bad state is a one-line error."""
    _set_generator_state(_Source(_check_path("fit", path, "checkpoint"), "fit"), g, state,
                         "the checkpoint's shuffling state")
