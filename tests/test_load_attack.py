"""Hostile and damaged model files: ``nn.load`` refuses them with one line, or loads them
correctly, and never takes the machine.

The corpus below is crafted inside the tests (each entry writes its file into a folder): the
cases of issue 13 (a few-hundred-byte spec describing gigabytes of weights, zip bombs, a text
file, a spec nested 10,000 deep) and their siblings (truncations, duplicate and undeclared
members, wrong dtypes and byte orders, pickles, forged headers and zip directories, absurd
sizes for every layer type, symlinks, FIFOs). Every entry is its own test with the message it
must give. The acceptance check runs the whole corpus in one subprocess that has only
imported ``droplab.nn``: loading any file of up to 64 KB raises peak resident memory
(``ru_maxrss``) by less than 200 MB and takes less than 5 s.

A second part checks that a checkpoint written while a rate schedule changes ``p`` resumes
bit-identically, with every callback droplab ships.
"""

from __future__ import annotations

import io as _io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from droplab import nn
from droplab.errors import DroplabError, FileError, InvalidValueError, ResourceLimitError
from droplab.nn import io as nnio

# --------------------------------------------------------------------------------- builders


def _npy(a: np.ndarray) -> bytes:
    b = _io.BytesIO()
    np.save(b, a, allow_pickle=True)
    return b.getvalue()


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    """An archive of raw members (duplicates allowed: zipfile only warns)."""
    b = _io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(b, "w", method) as z:
            for name, data in members:
                z.writestr(name, data)
    return b.getvalue()


def _raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip64 archive written by hand: ``(name, stored bytes, method, crc, uncompressed size)``,
    so a member can claim any size (zipfile computes them from the data)."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size in members:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(n), 20) + n + struct.pack("<2H2Q", 1, 16, size, len(data)) + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(n), 28, 0, 0, 0, 0, 0xFFFFFFFF) + n
        central += struct.pack("<2H3Q", 1, 24, size, len(data), offset)
    cd_offset = len(out)
    out += central
    z64 = len(out)
    k = len(members)
    out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, k, k, len(central), cd_offset)
    out += struct.pack("<4sLQL", b"PK\x06\x07", 0, z64, 1)
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def _deflated_zeros(header: bytes, nbytes: int) -> bytes:
    """A raw deflate stream of ``header`` then ``nbytes`` zero bytes, made without compressing
    them all: after a full flush the compressor starts afresh, so every 16 MiB block of zeros
    compresses to the same bytes, which are repeated."""
    block = 16 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    assert piece == again
    whole, rest = divmod(nbytes, block)
    return head + piece * whole + c.compress(bytes(rest)) + c.flush()


def _spec(model: dict, arrays: dict[str, np.ndarray] | None = None, **top) -> dict:
    return {"format": "droplab-model", "format_version": 1, "droplab": "0", "model": model,
            "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.name} for k, a in (arrays or {}).items()},
            **top}


def _file(spec: dict | str | bytes, arrays: dict[str, np.ndarray] | None = None,
          method: int = zipfile.ZIP_STORED) -> bytes:
    raw = spec if isinstance(spec, bytes) else (spec if isinstance(spec, str) else json.dumps(spec)).encode()
    members = [("__spec__.npy", _npy(np.frombuffer(raw, np.uint8)))]
    members += [(f"{k}.npy", _npy(a)) for k, a in (arrays or {}).items()]
    return _zip(members, method)


def _layer(kind: str, **config) -> dict:
    return {"type": kind, "config": config}


def _seq(*kids: dict) -> dict:
    return {"type": "Sequential", "config": {}, "children": list(kids),
            "child_args": {"*layers": list(range(len(kids)))}}


def _valid_model() -> nn.Module:
    return nn.Sequential(nn.Dense(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.2), nn.Dense(4, 2), seed=0)


def _valid_bytes(tmp: Path, **save) -> bytes:
    path = tmp / "valid-source.npz"
    _valid_model().save(path, **save)
    blob = path.read_bytes()
    path.unlink()
    return blob


def _parts(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(_io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("__spec__").tobytes()), arrays


def _forge(tmp: Path, edit_spec: Callable[[dict], object] | None = None,
           edit_arrays: Callable[[dict], object] | None = None, method: int = zipfile.ZIP_STORED) -> bytes:
    spec, arrays = _parts(_valid_bytes(tmp))
    if edit_spec:
        edit_spec(spec)
    if edit_arrays:
        edit_arrays(arrays)
    return _file(spec, arrays, method)


def _members(tmp: Path) -> list[tuple[str, bytes]]:
    spec, arrays = _parts(_valid_bytes(tmp))
    return ([("__spec__.npy", _npy(np.frombuffer(json.dumps(spec).encode(), np.uint8)))]
            + [(f"{k}.npy", _npy(a)) for k, a in arrays.items()])


def _header(shape, dtype="<f4", version=(1, 0)) -> bytes:
    """A .npy header alone (the data follows it)."""
    b = _io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return b.getvalue()


def _set(*path_value):
    *path, value = path_value

    def edit(spec):
        node = spec
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _swap(name: str, value: np.ndarray, declare: bool = False):
    """Replace array ``name`` (keeping the spec's declaration unless ``declare``)."""
    def edit(arrays):
        arrays[name] = value
    return edit


# ------------------------------------------------------------------------------ the corpus
# name -> (builder(folder) -> path, expectation). The expectation is "ok" (loads, and gives the
# same outputs as the model it came from where there is one) or (error class, message regex).
Builder = Callable[[Path], Path]
CORPUS: dict[str, tuple[Builder, object]] = {}


def case(name: str, expect):
    def register(fn: Callable[[Path], bytes | Path]) -> Callable:
        def build(folder: Path) -> Path:
            out = fn(folder)
            if isinstance(out, Path):
                return out
            path = folder / f"{name}.npz"
            path.write_bytes(out)
            return path
        assert name not in CORPUS
        CORPUS[name] = (build, expect)
        return fn
    return register


def blob(name: str, expect, make: Callable[[Path], bytes]) -> None:
    case(name, expect)(make)


R, V = ResourceLimitError, InvalidValueError
BIG = r"which takes the model past 134217728 parameters"

# --- the cases: a few hundred bytes of spec describing gigabytes -------------------------
blob("issue_dense_20x4096", (R, r"module \d+ \(Dense\) has a parameter of shape \(4096, 4096\), " + BIG),
     lambda t: _file(_spec(_seq(*[_layer("Dense", in_features=4096, out_features=4096)] * 20))))
blob("issue_conv_kernel_12000", (R, r"Conv2d\) has a parameter of shape \(1, 1, 12000, 12000\), " + BIG),
     lambda t: _file(_spec(_layer("Conv2d", in_channels=1, out_channels=1, kernel_size=12000))))
blob("issue_conv_kernel_40000", (R, r"shape \(1, 1, 40000, 40000\), " + BIG),
     lambda t: _file(_spec(_layer("Conv2d", in_channels=1, out_channels=1, kernel_size=40000))))
blob("issue_gru_1_8000", (R, r"\(GRU\) has a parameter of shape \(8000, 24000\), " + BIG),
     lambda t: _file(_spec(_layer("GRU", input_size=1, hidden_size=8000))))
blob("issue_rnn_1_16000", (R, r"\(RNN\) has a parameter of shape \(16000, 16000\), " + BIG),
     lambda t: _file(_spec(_seq(_layer("RNN", input_size=1, hidden_size=16000)))))
blob("issue_text_file", (V, r"not a droplab model file \(not a zip archive\)"),
     lambda t: b"this is a text file, not a model\n" * 20)
blob("issue_spec_10000_deep", (V, r"the spec is nested too deeply \(model files nest at most 144 levels"),
     lambda t: _file('{"format": "droplab-model", "format_version": 1, "arrays": {}, "model": '
                     + "[" * 10_000 + "]" * 10_000 + "}"))
def _dense_zeros(n: int, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    arrays = {"param/0": np.zeros((n, n), np.float32), "param/1": np.zeros(n, np.float32)}
    return _file(_spec(_layer("Dense", in_features=n, out_features=n), arrays), arrays, method)


# a valid Dense spec whose weight is a deflated zip bomb: 61 MiB of zeros in a 60 KB file
blob("issue_bomb_61mib_in_60kb", (R, r"members would expand from \d+ to \d+ bytes, more than 64 times"),
     lambda t: _dense_zeros(4000))

# --- not zip archives, damaged archives ------------------------------------------------------------
blob("empty", (V, r"not a droplab model file \(not a zip archive\)"), lambda t: b"")
blob("end_record_only_prefix", (V, r"too short to be a zip archive"), lambda t: b"PK\x05\x06\x00\x00")
blob("ten_bytes", (V, r"not a zip archive"), lambda t: b"0123456789")
blob("random_bytes", (V, r"not a zip archive"),
     lambda t: b"\x00" + bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
blob("zip_magic_then_junk", (V, r"damaged zip archive"), lambda t: b"PK\x03\x04" + b"\xff" * 200)
blob("single_npy", (V, r"a single \.npy array, not an \.npz archive"), lambda t: _npy(np.zeros(3)))
blob("json_file", (V, r"not a zip archive"), lambda t: json.dumps(_spec({"type": "ReLU", "config": {}})).encode())
blob("unicode_junk", (V, r"not a zip archive"), lambda t: "\u202e\u0000\ud7ff\U0001F4A9 ünïcödé\n".encode() * 50)
for _cut in (30, 200, 600, -300, -22, -1):
    blob(f"truncated_at_{_cut}", (V, r"damaged|unreadable|no '__spec__'|not a zip"),
         lambda t, c=_cut: _valid_bytes(t)[:c])
def _flip_last_byte_of(t: Path, member: str) -> bytes:
    members = _members(t)
    data = dict(members)[member]
    b = bytearray(_zip(members))
    i = bytes(b).find(data) + len(data) - 1
    b[i] ^= 0xFF
    return bytes(b)


def _patch_at(b: bytes, signature: bytes, offset: int, fmt: str, value: int) -> bytes:
    i = b.rfind(signature) + offset
    return b[:i] + struct.pack(fmt, value) + b[i + struct.calcsize(fmt):]


blob("flipped_data_byte", (V, r"array 'param/4' is damaged \(bad zip entry or checksum\)"),
     lambda t: _flip_last_byte_of(t, "param/4.npy"))
blob("lying_directory_size", (V, r"damaged zip archive \(its directory is larger than the file\)"),
     lambda t: _patch_at(_zip(_members(t)), b"PK\x05\x06", 12, "<L", 0x7FFFFFF0))
blob("zip64_claims_a_billion_members", (R, r"it lists 1000000000 arrays; model files hold at most 100000"),
     lambda t: _patch_at(_raw_zip([("__spec__.npy", b"x", 0, 0, 1)]), b"PK\x06\x06", 32, "<Q", 10**9))

# --- members ------------------------------------------------------------------------------------------
blob("no_spec", (V, r"no '__spec__' entry"), lambda t: _zip([("param/0.npy", _npy(np.zeros(3, np.float32)))]))
blob("duplicate_member", (V, r"the archive holds 'param/0\.npy' twice"),
     lambda t: _zip(_members(t) + [("param/0.npy", _npy(np.zeros((3, 4), np.float32)))]))
blob("undeclared_member", (V, r"unexpected array 'extra/sneaky' \(the spec does not declare it\)"),
     lambda t: _zip(_members(t) + [("extra/sneaky.npy", _npy(np.zeros(3)))]))
blob("not_npy_member", (V, r"unexpected member 'readme\.txt'"), lambda t: _zip(_members(t) + [("readme.txt", b"hi")]))
blob("missing_declared_array", (V, r"missing array 'param/3'"),
     lambda t: _forge(t, edit_arrays=lambda a: a.pop("param/3")))
blob("pickled_object_param", (V, r"array 'param/0' has dtype object;.*pickled objects are never loaded"),
     lambda t: _forge(t, edit_arrays=_swap("param/0", np.array([{"x": 1}, None], dtype=object))))
blob("pickled_object_spec", (V, r"array '__spec__' has dtype object"),
     lambda t: _zip([("__spec__.npy", _npy(np.array([os.system], dtype=object)))]))
blob("pickled_undeclared", (V, r"dtype object.*pickled objects are never loaded"),
     lambda t: _zip(_members(t) + [("extra/x.npy", _npy(np.array([print], dtype=object)))]))
blob("pickle_file", (V, r"not a zip archive"), lambda t: pickle.dumps({"model": [1, 2, 3]}))
blob("bzip2_member", (V, r"uses compression method 12; model files are stored or deflated"),
     lambda t: _zip(_members(t), zipfile.ZIP_BZIP2))
blob("encrypted_flag", (V, r"member '__spec__\.npy' is encrypted"),
     lambda t: _patch_at(_zip([("__spec__.npy", b"x")]), b"PK\x01\x02", 8, "<H", 1))

# --- .npy headers and dtypes --------------------------------------------------------------------------
for _name, _arr in {"complex64": np.zeros((3, 4), np.complex64), "float16": np.zeros((3, 4), np.float16),
                    "big_endian": np.zeros((3, 4), ">f4"), "int32": np.zeros((3, 4), np.int32),
                    "bool": np.zeros((3, 4), bool), "unicode": np.full((3, 4), "ab"),
                    "structured": np.zeros((3, 4), [("a", "<f4")]), "datetime": np.zeros((3, 4), "M8[s]")}.items():
    blob(f"dtype_{_name}", (V, r"array 'param/0' has dtype .*model files hold float32, float64, int64 or uint8"),
         lambda t, a=_arr: _forge(t, edit_arrays=_swap("param/0", a)))
blob("int64_declared_param", (V, r"array 'param/0' has dtype int64; parameters are float32 or float64"),
     lambda t: _forge(t, _set("arrays", "param/0", "dtype", "int64"), _swap("param/0", np.zeros((3, 4), np.int64))))
blob("fortran_order_param", "ok",
     lambda t: _forge(t, edit_arrays=lambda a: a.update({"param/0": np.asfortranarray(a["param/0"])})))
blob("float64_param_in_float32_layer", (V, r"makes parameter 0 with shape \(3, 4\) and dtype float32; the file holds "
                                           r"shape \(3, 4\) and dtype float64"),
     lambda t: _forge(t, _set("arrays", "param/0", "dtype", "float64"),
                      lambda a: a.update({"param/0": a["param/0"].astype(np.float64)})))
blob("shape_mismatch_header", (V, r"array 'param/0' has shape \(4, 3\) and dtype float32; the spec declares shape "
                                  r"\(3, 4\)"),
     lambda t: _forge(t, edit_arrays=lambda a: a.update({"param/0": a["param/0"].T.copy()})))
blob("declared_shape_differs_from_layer", (V, r"module 1 \(Dense\) makes parameter 0 with shape \(3, 4\).*holds shape "
                                              r"\(4, 3\)"),
     lambda t: _forge(t, _set("arrays", "param/0", "shape", [4, 3]),
                      lambda a: a.update({"param/0": a["param/0"].T.copy()})))
blob("negative_dim_in_spec", (V, r"must be a shape \(a list of at most 32 non-negative integers\)"),
     lambda t: _forge(t, _set("arrays", "param/0", "shape", [-3, 4])))
blob("huge_dim_in_spec", (R, r"its arrays would take more than 4294967296 bytes"),
     lambda t: _forge(t, _set("arrays", "param/0", "shape", [10**30, 4])))
blob("header_shape_huge", (V, r"array 'param/0' has shape \(1000000000000, 4\)"),
     lambda t: _zip([m if m[0] != "param/0.npy" else ("param/0.npy", _header((10**12, 4)) + bytes(48))
                     for m in _members(t)]))
blob("header_too_long", (V, r"array 'param/0' has a 60000-byte header"),
     lambda t: _zip([m if m[0] != "param/0.npy" else
                     ("param/0.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 60000) + b" " * 60000)
                     for m in _members(t)]))
blob("header_npy_v3", (V, r"uses \.npy format 3\.0"),
     lambda t: _zip([m if m[0] != "param/0.npy" else ("param/0.npy", b"\x93NUMPY\x03" + m[1][7:])
                     for m in _members(t)]))
blob("header_not_a_dict", (V, r"array 'param/0' is damaged \(bad \.npy header\)"),
     lambda t: _zip([m if m[0] != "param/0.npy" else
                     ("param/0.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 21) + b"__import__('os')    \n")
                     for m in _members(t)]))
blob("member_shorter_than_header", (V, r"array 'param/0' takes \d+ bytes in the archive; its shape \(3, 4\) and dtype "
                                       r"float32 need \d+"),
     lambda t: _zip([m if m[0] != "param/0.npy" else ("param/0.npy", m[1][:-8]) for m in _members(t)]))
blob("member_far_larger_than_declared", (V, r"array 'param/0' takes 20176 bytes in the archive; its shape \(3, 4\) "
                                           r"and dtype float32 need 48 and a header"),
     lambda t: _zip([m if m[0] != "param/0.npy" else ("param/0.npy", m[1] + bytes(20_000)) for m in _members(t)]))
blob("spec_header_negative_length", (V, r"array '__spec__' is damaged \(its \.npy header gives shape \(-5,\)\)"),
     lambda t: _zip([("__spec__.npy", _header((-5,), "|u1"))]))
blob("spec_as_float_array", (V, r"the '__spec__' entry must be UTF-8 JSON bytes"),
     lambda t: _zip([("__spec__.npy", _npy(np.zeros(10)))]))
blob("spec_2d", (V, r"the '__spec__' entry must be UTF-8 JSON bytes"),
     lambda t: _zip([("__spec__.npy", _npy(np.zeros((2, 2), np.uint8)))]))

# --- zip directories that lie about sizes ----------------------------------------------------------------
blob("lying_size_bomb", (V, r"array 'param/0' is damaged \(bad zip entry or checksum\)"),
     # the directory says 48 bytes of data (a (3, 4) float32); the stream inflates to 32 MiB
     lambda t: _raw_zip([(n, d, 0, zlib.crc32(d), len(d)) for n, d in _members(t) if n != "param/0.npy"]
                        + [("param/0.npy", _deflated_zeros(_header((3, 4)), 32 << 20), 8, 0,
                            len(_header((3, 4))) + 48)]))
blob("directory_claims_16gib", (R, r"members would expand from \d+ to \d+ bytes, more than 64 times"),
     lambda t: _raw_zip([(n, d, 0, zlib.crc32(d), len(d)) for n, d in _members(t)]
                        + [("extra/bomb.npy", b"\x03\x00", 8, 0, 16 << 30)]))

# --- the spec's JSON ---------------------------------------------------------------------------------------
blob("spec_not_json", (V, r"the '__spec__' entry is not valid JSON"), lambda t: _file("{not json"))
blob("spec_nan", (V, r"not valid JSON"), lambda t: _file('{"format": "droplab-model", "x": NaN}'))
blob("spec_infinity_via_1e999", (V, r"argument 'p' is not finite"),
     lambda t: _file(json.dumps(_spec(_layer("Dropout", p=0.5))).replace("0.5", "1e999")))
blob("spec_list", (V, r"its spec has no 'format': 'droplab-model'"), lambda t: _file("[1, 2]"))
blob("spec_string", (V, r"its spec has no 'format'"), lambda t: _file('"droplab-model"'))
blob("spec_null", (V, r"its spec has no 'format'"), lambda t: _file("null"))
blob("spec_not_utf8", (V, r"the '__spec__' entry is not UTF-8 text"), lambda t: _file(b'{"a": "\xff\xfe"}'))
blob("spec_huge_int", (V, r"not valid JSON"),
     lambda t: _file('{"format": "droplab-model", "format_version": ' + "9" * 5000 + "}"))
blob("spec_huge_string", (V, r"module 0 \(Dense\) cannot be rebuilt from its config: Dense: `init` must be"),
     lambda t: _file(_spec(_layer("Dense", in_features=2, out_features=2, init="x" * 60_000),
                           {"param/0": np.zeros((2, 2), np.float32), "param/1": np.zeros(2, np.float32)}),
                     {"param/0": np.zeros((2, 2), np.float32), "param/1": np.zeros(2, np.float32)}))
blob("spec_four_mib_of_braces", (R, r"its spec holds \d+ JSON objects and lists; model files' hold at most 262144"),
     lambda t: _file('{"format": "droplab-model", "format_version": 1, "x": [' + "{}," * 1_300_000 + "{}]}",
                     method=zipfile.ZIP_DEFLATED))
blob("spec_over_four_mib", (R, r"its spec takes \d+ bytes; model files' take at most 4194304"),
     lambda t: _file('{"format": "droplab-model"' + " " * (5 << 20) + "}", method=zipfile.ZIP_DEFLATED))
blob("spec_whitespace_3mib_valid", "ok",
     lambda t: _file(json.dumps(_parts(_valid_bytes(t))[0]) + " " * (3 << 20), _parts(_valid_bytes(t))[1],
                     method=zipfile.ZIP_DEFLATED))
blob("spec_unicode_type", (V, r"`type` must be a droplab.nn layer; got type="),
     lambda t: _file(_spec(_layer("D\u0113nse\u202e\n\x00", in_features=2))))
blob("unknown_layer", (V, r"`type` must be a droplab.nn layer; got type='os.system'"),
     lambda t: _file(_spec(_layer("os.system", command="rm -rf /"))))
blob("private_layer", (V, r"`type` must be a droplab.nn layer"), lambda t: _file(_spec(_layer("_Pool2d"))))
blob("newer_format", (V, r"written in model-file format 99 \(droplab 9\.0\), newer than this droplab"),
     lambda t: _forge(t, lambda s: s.update(format_version=99, droplab="9.0")))
blob("config_not_json_scalar", (V, r"argument 'p' must be a JSON scalar or list; found a dict"),
     lambda t: _forge(t, _set("model", "children", 3, "config", "p", {"a": 1})))
blob("bad_key", (V, r"'key' must be two integers in \[0, 2\*\*32\)"),
     lambda t: _forge(t, _set("model", "children", 3, "key", [1, 2**40])))
blob("bad_child_args", (V, r"'child_args' entry '\*layers' does not fit the constructor or the children"),
     lambda t: _forge(t, _set("model", "child_args", {"*layers": [0, 0, 9]})))
blob("modules_nested_100_deep", (R, r"nests modules more than 64 deep"),
     lambda t: _file(_spec(__import__("functools").reduce(lambda n, _: _seq(n), range(70), _layer("ReLU")))))
blob("twenty_thousand_modules", (R, r"the architecture has more than 10000 modules"),
     lambda t: _file(_spec(_seq(*[_layer("ReLU")] * 20_000)), method=zipfile.ZIP_DEFLATED))
blob("nan_param", (V, r"array 'param/0' holds NaN or infinite values"),
     lambda t: _forge(t, edit_arrays=_swap("param/0", np.full((3, 4), np.nan, np.float32))))
blob("undeclared_array_prefix", (V, r"the spec declares an array named 'evil/x'"),
     lambda t: _forge(t, lambda s: s["arrays"].update({"evil/x": {"shape": [1], "dtype": "uint8"}}),
                      lambda a: a.update({"evil/x": np.zeros(1, np.uint8)})))

# --- every layer type with absurd sizes --------------------------------------------------------------------
for _name, _node, _msg in [
    ("dense_huge", _layer("Dense", in_features=10**6, out_features=10**6), BIG),
    ("dense_1e30", _layer("Dense", in_features=10**30, out_features=1), BIG),
    ("dense_negative", _layer("Dense", in_features=-5, out_features=3), r"`in_features` must be a positive integer"),
    ("dense_float_size", _layer("Dense", in_features=2.5, out_features=3), r"`in_features` must be a positive"),
    ("dense_object_dtype", _layer("Dense", in_features=2, out_features=3, dtype="object"), r"`dtype` must be float32"),
    ("conv_pair_kernel", _layer("Conv2d", in_channels=64, out_channels=64, kernel_size=[3000, 3000]), BIG),
    ("conv_padding_1e6", _layer("Conv2d", in_channels=1, out_channels=1, kernel_size=1, padding=10**6),
     r"would need \d+ elements of working memory per input row"),
    ("maxpool_kernel_1e5", _layer("MaxPool2d", kernel_size=10**5), r"working memory per input row \(kernel area\)"),
    ("avgpool_kernel_1e5", _layer("AvgPool2d", kernel_size=[10**5, 10**5]), r"per input row \(kernel area\)"),
    ("batchnorm1d_1e9", _layer("BatchNorm1d", features=10**9), BIG),
    ("batchnorm2d_1e9", _layer("BatchNorm2d", channels=10**9), BIG),
    ("rnn_huge_input", _layer("RNN", input_size=10**9, hidden_size=2), BIG),
    ("gru_huge_hidden", _layer("GRU", input_size=2, hidden_size=10**5), BIG),
    ("dropconnect_huge", _layer("DropConnect", in_features=20000, out_features=20000), BIG),
    ("dropconnect_per_example", _layer("DropConnect", in_features=5000, out_features=5000, per="example"),
     r"per input row \(in_features x out_features \(per='example'\)\)"),
    ("dropconnect_gaussian_samples", _layer("DropConnect", in_features=2, out_features=1000, inference="gaussian",
                                            samples=10**9), r"\(samples x out_features \(inference='gaussian'\)\)"),
    ("concrete_around_huge_dense", {"type": "ConcreteDropout", "config": {}, "child_args": {"layer": 0},
                                    "children": [_layer("Dense", in_features=10**5, out_features=10**5)]}, BIG),
    ("residual_around_huge_dense", {"type": "Residual", "config": {}, "child_args": {"block": 0},
                                    "children": [_layer("Dense", in_features=10**5, out_features=10**5)]}, BIG),
    ("conv_zero_channels", _layer("Conv2d", in_channels=0, out_channels=1, kernel_size=1),
     r"`in_channels` must be a positive integer"),
    ("pool_bad_kernel", _layer("MaxPool2d", kernel_size="big"), r"`kernel_size` must be an integer >= 1 or a pair"),
    ("gru_dtype_list", _layer("GRU", input_size=1, hidden_size=1, dtype=["f4"]), r"`dtype` must be float32 or float64"),
]:
    blob(f"layer_{_name}", (R if _msg == BIG or "per input row" in _msg else V, _msg),
         lambda t, n=_node: _file(_spec(n, {"param/0": np.zeros(1, np.float32)}), {"param/0": np.zeros(1, np.float32)}))
# a DropBlock2d with an absurd block is a valid layer (its forward refuses any input smaller than
# the block): nothing is allocated, so it loads
blob("layer_dropblock_huge_block", "ok", lambda t: _file(_spec(_layer("DropBlock2d", block_size=10**9))))
# DropConnect's own Dense is built by its constructor: a small child in the spec cannot hide a big one
blob("dropconnect_hides_its_dense", (V, r"module 0 \(DropConnect\) makes parameter 0 with shape \(4096, 4096\)"),
     lambda t: _file(_spec({"type": "DropConnect", "config": {"in_features": 4096, "out_features": 4096},
                            "children": [_layer("Dense", in_features=1, out_features=1)]},
                           {"param/0": np.zeros((1, 1), np.float32), "param/1": np.zeros(1, np.float32)}),
                     {"param/0": np.zeros((1, 1), np.float32), "param/1": np.zeros(1, np.float32)}))
blob("dropconnect_activation_is_its_dense", (V, r"module 1 \(DropConnect\): 'child_args' passes a child the "
                                               r"constructor builds itself"),
     lambda t: _file(_spec(_seq(*[{"type": "DropConnect", "config": {"in_features": 1, "out_features": 1},
                                   "child_args": {"activation": 0},
                                   "children": [_layer("Dense", in_features=4096, out_features=4096)]}] * 50),
                           {f"param/{i}": np.zeros((1, 1) if i % 2 == 0 else 1, np.float32) for i in range(100)}),
                     {f"param/{i}": np.zeros((1, 1) if i % 2 == 0 else 1, np.float32) for i in range(100)}))

# --- files that must load -------------------------------------------------------------------------------------
blob("valid", "ok", _valid_bytes)
blob("valid_with_optimizer", "ok", lambda t: _valid_bytes(t, optimizer=nn.Adam()))
blob("valid_deflated", "ok", lambda t: _forge(t, method=zipfile.ZIP_DEFLATED))
# the most a small file may hold: 8 MiB of zeros (INFLATE_FLOOR) in an 8 KB file, built and loaded
blob("zeros_at_the_inflate_floor", "ok", lambda t: _dense_zeros(1447))
blob("zeros_past_the_inflate_floor", (R, r"members would expand from \d+ to \d+ bytes, more than 64 times"),
     lambda t: _dense_zeros(1449))


def _recurrent_zeros(kind: str, h: int) -> bytes:
    k = 3 * h if kind == "GRU" else h
    arrays = {"param/0": np.zeros((1, k), np.float32), "param/1": np.zeros((h, k), np.float32),
              "param/2": np.zeros(k, np.float32), "param/3": np.zeros(k, np.float32)}
    if kind == "RNN":
        del arrays["param/3"]
    return _file(_spec(_layer(kind, input_size=1, hidden_size=h), arrays), arrays, zipfile.ZIP_DEFLATED)


# recurrent layers of the same size: their constructors' QR factorisations must finish in time
blob("gru_at_the_inflate_floor", "ok", lambda t: _recurrent_zeros("GRU", 830))
blob("rnn_at_the_inflate_floor", "ok", lambda t: _recurrent_zeros("RNN", 1440))
blob("nine_thousand_dropouts", "ok",
     lambda t: _file(_spec(_seq(*[_layer("Dropout", p=0.1)] * 9000)), method=zipfile.ZIP_DEFLATED))


# --- paths that are not plain files ------------------------------------------------------------------------------
@case("symlink_to_valid", "ok")
def _(t: Path) -> Path:
    target = t / "symlink-target.npz"
    target.write_bytes(_valid_bytes(t))
    (t / "symlink_to_valid.npz").symlink_to(target)
    return t / "symlink_to_valid.npz"


@case("symlink_to_dev_zero", (FileError, r"not a regular file \(a FIFO, socket or device is never read\)"))
def _(t: Path) -> Path:
    (t / "zero.npz").symlink_to("/dev/zero")
    return t / "zero.npz"


@case("fifo", (FileError, r"not a regular file"))
def _(t: Path) -> Path:
    os.mkfifo(t / "fifo.npz")
    return t / "fifo.npz"


@case("dangling_symlink", (FileError, r"no such file"))
def _(t: Path) -> Path:
    (t / "dangling.npz").symlink_to(t / "nowhere.npz")
    return t / "dangling.npz"


@case("symlink_loop", (FileError, r"Too many levels of symbolic links"))
def _(t: Path) -> Path:
    (t / "loop.npz").symlink_to(t / "loop.npz")
    return t / "loop.npz"


@case("folder", (FileError, r"it is a folder, not a model file"))
def _(t: Path) -> Path:
    (t / "folder.npz").mkdir()
    return t / "folder.npz"


# larger than 64 KB: the bombs (refused from the zip directory, nothing inflated)
LARGE = {}


def _bomb(t: Path, gib: float, dtype=np.float32) -> bytes:
    n = int(gib * (1 << 30)) // np.dtype(dtype).itemsize
    header = _header((n,), np.dtype(dtype).str)
    members = [(name, d, 0, zlib.crc32(d), len(d)) for name, d in _members(t)]
    spec, _ = _parts(_valid_bytes(t))
    spec["arrays"]["extra/bomb"] = {"shape": [n], "dtype": np.dtype(dtype).name}
    members[0] = ("__spec__.npy", d := _npy(np.frombuffer(json.dumps(spec).encode(), np.uint8)), 0, zlib.crc32(d),
                  len(d))
    # the CRC of gigabytes of zeros is not computed: the loader must refuse before reading them
    return _raw_zip(members + [("extra/bomb.npy", _deflated_zeros(header, n * np.dtype(dtype).itemsize), 8, 0,
                                len(header) + n * np.dtype(dtype).itemsize)])


for _name, _gib, _dt, _expect in [("bomb_1mb_to_1gib", 1, np.float32, (R, r"more than 64 times \(a zip bomb\?\)")),
                                  ("bomb_2mb_to_2gib", 2, np.float32, (R, r"more than 64 times \(a zip bomb\?\)")),
                                  ("bomb_16gib", 16, np.float64, (R, r"more than 64 times \(a zip bomb\?\)"))]:
    blob(_name, _expect, lambda t, g=_gib, d=_dt: _bomb(t, g, d))
    LARGE[_name] = True


# ------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    return {name: build(folder) for name, (build, _) in CORPUS.items()}


def test_the_corpus_is_large_and_small_files_are_small(corpus):
    assert len(CORPUS) >= 50
    for name, path in corpus.items():
        if path.is_file() and name not in LARGE:
            assert path.stat().st_size <= 64 << 10, name
        if name in LARGE:
            assert path.stat().st_size <= 32 << 20, name


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_file_is_refused_with_one_line_or_loads(corpus, name, tmp_path):
    path = corpus[name]
    expect = CORPUS[name][1]
    if expect == "ok":
        model = nn.load(path)
        x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
        if name.startswith(("valid", "fortran", "symlink", "spec_whitespace")):
            reference = _valid_model()
            reference.eval()
            assert np.array_equal(model.eval().forward(x), reference.forward(x)), name
        return
    cls, pattern = expect
    with pytest.raises(DroplabError) as info:
        nn.load(path)
    exc = info.value
    assert isinstance(exc, cls), (type(exc), str(exc))
    text = str(exc)
    assert "\n" not in text and text.startswith(f"nn.load: cannot use {str(path)!r}: ") and text.endswith("."), text
    assert len(text) < 600, text
    assert __import__("re").search(pattern, text), text
    for internal in ("_read", "_check", "_build", ".tmp", "Traceback"):
        assert internal not in text, text


# One subprocess: import droplab.nn, note maxrss, load every file (small ones first), note the
# rise of maxrss after each and the seconds each took. An address-space limit (baseline + 3 GiB)
# turns a runaway allocation into a MemoryError instead of swapping the machine.
_PROBE = textwrap.dedent('''
    import gc, json, resource, sys, time
    import droplab.nn as nn
    from droplab.errors import DroplabError

    def vm():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

    try:
        resource.setrlimit(resource.RLIMIT_AS, (vm() + (3 << 30), resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = []
    for name, path in json.loads(sys.argv[1]):
        t = time.perf_counter()
        try:
            nn.load(path)
            outcome = "ok"
        except DroplabError as exc:
            outcome = type(exc).__name__
        except BaseException as exc:
            outcome = "NOT A DROPLAB ERROR: " + type(exc).__name__ + ": " + str(exc)[:200]
        seconds = time.perf_counter() - t
        gc.collect()
        rise = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
        out.append({"name": name, "seconds": seconds, "rise_mb": rise, "outcome": outcome})
        print(json.dumps(out[-1]), flush=True)
''')


def _probe(tmp_path: Path, files: list[tuple[str, Path]], timeout: float) -> list[dict]:
    script = tmp_path / "probe.py"
    script.write_text(_PROBE)
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
    try:
        done = subprocess.run([sys.executable, str(script), json.dumps([(n, str(p)) for n, p in files])],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        partial = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        seen = [json.loads(line)["name"] for line in partial.splitlines() if line.startswith("{")]
        pytest.fail(f"loading did not finish within {timeout} s; finished: {seen[-3:]}, next one hung")
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_loading_any_small_file_takes_under_200_mb_and_5_s(corpus, tmp_path):
    small = [(n, p) for n, p in corpus.items() if n not in LARGE]
    results = _probe(tmp_path, small + [(n, corpus[n]) for n in LARGE], timeout=120)
    assert [r["name"] for r in results] == [n for n, _ in small] + list(LARGE)
    for r in results:
        assert not r["outcome"].startswith("NOT"), r
        assert r["seconds"] < 5, r
        assert r["rise_mb"] < 200, r
        expect = CORPUS[r["name"]][1]
        assert (r["outcome"] == "ok") == (expect == "ok"), r


# ------------------------------------------------------------------------------- size rules
SAMPLES = {
    "Dense": [dict(in_features=3, out_features=5), dict(in_features=1, out_features=1, dtype="float64")],
    "Conv2d": [dict(in_channels=2, out_channels=3, kernel_size=3), dict(in_channels=1, out_channels=4,
                                                                        kernel_size=(2, 5), padding=1)],
    "BatchNorm1d": [dict(features=7)], "BatchNorm2d": [dict(channels=3, dtype="float64")],
    "RNN": [dict(input_size=3, hidden_size=4)], "GRU": [dict(input_size=2, hidden_size=5)],
    "DropConnect": [dict(in_features=3, out_features=2), dict(in_features=4, out_features=6, per="example")],
    "MaxPool2d": [dict(kernel_size=2)], "AvgPool2d": [dict(kernel_size=(2, 3), stride=1)],
    "DropBlock2d": [dict(block_size=3)],
    "Conv1d": [dict(in_channels=2, out_channels=3, kernel_size=5), dict(in_channels=1, out_channels=4, kernel_size=3,
                                                                        padding=2, dilation=2, bias=False)],
    "MaxPool1d": [dict(kernel_size=2)], "AvgPool1d": [dict(kernel_size=3, stride=1)],
}
SAMPLES["RNN"].append(dict(input_size=3, hidden_size=4, bidirectional=True))
SAMPLES["GRU"].append(dict(input_size=1, hidden_size=6, bidirectional=True, return_sequences=True))


def test_every_layer_type_has_a_size_rule_that_matches_its_constructor():
    known = nnio.layer_types()
    assert set(known) <= set(nnio._SIZE_RULES), sorted(set(known) - set(nnio._SIZE_RULES))
    src = nnio._Source(Path("x"))
    for name, configs in SAMPLES.items():
        for config in configs:
            layer = known[name](**config)
            sizes = nnio._SIZE_RULES[name](nnio._Config(src, name, config, known[name]))
            got = [(p.value.shape, p.value.dtype.name) for p in layer.parameters()]
            assert [(s, d) for s, d in sizes.params] == got, (name, config)
    inner = nn.Dense(4, 3, dtype=np.float64)
    sizes = nnio._SIZE_RULES["ConcreteDropout"](nnio._Config(src, "c", {}, nn.ConcreteDropout))
    assert [s for s, _ in sizes.params] == [p.value.shape for p in nn.ConcreteDropout(inner)._parameters()]
    for name in set(known) - set(SAMPLES) - {"ConcreteDropout", "Sequential", "Residual"}:
        assert nnio._SIZE_RULES[name] is nnio._nothing, name
        assert not known[name]()._parameters(), name


def test_a_layer_type_added_later_still_loads_but_is_held_to_a_small_budget(tmp_path, monkeypatch):
    class Wide(nn.Module):
        def __init__(self, width):
            super().__init__()
            self._config = {"width": width}
            self.table = np.zeros((width, width))

        def _buffers(self):
            return {"table": self.table}

    monkeypatch.setattr(nn, "Wide", Wide, raising=False)
    monkeypatch.setattr(nn, "__all__", [*nn.__all__, "Wide"])
    nn.Sequential(Wide(3)).save(tmp_path / "w.npz")
    assert nn.load(tmp_path / "w.npz")[0].table.shape == (3, 3)
    (tmp_path / "big.npz").write_bytes(_file(_spec(_layer("Wide", width=100_000))))
    with pytest.raises(ResourceLimitError, match=r"module 0 \(Wide\) has integer arguments multiplying to 100000; a "
                                                 r"layer type without a size rule in the loader may use at most 2048"):
        nn.load(tmp_path / "big.npz")


# ----------------------------------------------------------------------------------- saving
def test_save_to_a_folder_names_the_path_and_says_it_is_a_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileError, match=rf"^save: cannot write {str(tmp_path / 'out')!r}: it is a folder; give a file "
                                        r"name inside it\.$") as info:
        _valid_model().save(tmp_path / "out")
    assert ".tmp" not in str(info.value) and "droplab-tmp" not in str(info.value)
    assert os.listdir(tmp_path / "out") == [] and os.listdir(tmp_path) == ["out"]


def test_save_below_a_file_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileError) as info:
        _valid_model().save(tmp_path / "f" / "m.npz")
    text = str(info.value)
    assert "\n" not in text and str(tmp_path / "f" / "m.npz") in text and "tmp-" not in text.split("m.npz")[-1], text


def test_the_limits_are_documented():
    for name in ("MAX_PARAMETERS", "MAX_MEMBERS", "MAX_SPEC_BYTES", "MAX_SPEC_NESTING", "MAX_DEPTH",
                 "MAX_MODULES", "MAX_ARRAY_BYTES", "MAX_ROW_ELEMENTS", "MAX_INFLATE_RATIO"):
        assert name in nnio.__doc__ and name in nnio.load.__doc__, name
    assert nnio.MAX_PARAMETERS == 1 << 27 and nnio.MAX_SPEC_NESTING == 144 and nnio.MAX_DEPTH == 64


# ------------------------------------------------------------------ resume under every callback
def _problem():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)
    return X, y, (X[:30] + 0.05, y[:30])


def _net():
    return nn.Sequential(nn.Dense(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Dense(16, 16), nn.Tanh(),
                         nn.DropConnect(16, 3, p=0.3), seed=21)


class _Stop(Exception):
    pass


class _StopAt:
    """Interrupts fit at the start of an epoch (after the previous epoch's checkpoint)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, epoch, model):
        if epoch == self.epoch:
            raise _Stop


CALLBACKS = {
    "LinearRamp": lambda: [nn.LinearRamp(0.0, 0.6, epochs=5)],
    "EarlyDropout": lambda: [nn.EarlyDropout(0.4, epochs=3)],
    "ConstantRate": lambda: [nn.ConstantRate(0.2)],
    "MaxNorm": lambda: [nn.MaxNorm(1.5)],
    "LinearRamp+MaxNorm+early_stopping": lambda: [nn.LinearRamp(0.5, 0.1, epochs=4), nn.MaxNorm(2.0)],
}


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_a_checkpoint_written_under_a_schedule_resumes_bit_identically(tmp_path, name):
    X, y, val = _problem()
    kw = dict(loss=nn.SoftmaxCrossEntropy(), epochs=7, batch_size=32, validation_data=val, verbose=False)
    if "early_stopping" in name:
        kw.update(early_stopping=3)
    whole = _net()
    h_whole = whole.fit(X, y, optimizer=nn.Adam(0.02), callbacks=CALLBACKS[name](), **kw)
    ck = tmp_path / "ck.npz"
    # the same script run twice: interrupted after epoch 2, then rerun from scratch with resume=True
    with pytest.raises(_Stop):
        _net().fit(X, y, optimizer=nn.Adam(0.02), callbacks=CALLBACKS[name]() + [_StopAt(2)], checkpoint=ck,
                   resume=True, **kw)
    again = _net()
    h_again = again.fit(X, y, optimizer=nn.Adam(0.02), callbacks=CALLBACKS[name](), checkpoint=ck, resume=True, **kw)
    assert h_again == h_whole
    for p, q in zip(whole.parameters(), again.parameters()):
        assert np.array_equal(p.value, q.value)
    assert [m.config() for m in again.modules()] == [m.config() for m in whole.modules()]
    assert [getattr(m, "counter", None) for m in again.modules()] == [getattr(m, "counter", None)
                                                                     for m in whole.modules()]


def test_fit_twice_under_early_dropout_resumes_where_it_stopped(tmp_path):
    X, y, _ = _problem()
    kw = dict(loss=nn.SoftmaxCrossEntropy(), batch_size=40, verbose=False)
    whole = _net()
    h_whole = whole.fit(X, y, optimizer=nn.SGD(0.1), epochs=6, callbacks=[nn.EarlyDropout(0.5, epochs=2)], **kw)
    ck = tmp_path / "ck.npz"
    first = _net()
    first.fit(X, y, optimizer=nn.SGD(0.1), epochs=2, callbacks=[nn.EarlyDropout(0.5, epochs=2)], checkpoint=ck, **kw)
    second = _net()
    h = second.fit(X, y, optimizer=nn.SGD(0.1), epochs=6, callbacks=[nn.EarlyDropout(0.5, epochs=2)], checkpoint=ck,
                   resume=True, **kw)
    assert h == h_whole
    assert all(np.array_equal(p.value, q.value) for p, q in zip(whole.parameters(), second.parameters()))


def test_a_different_architecture_is_refused_from_fits_point_of_view(tmp_path):
    X, y, _ = _problem()
    ck = tmp_path / "ck.npz"
    kw = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(), epochs=1, verbose=False, checkpoint=ck, resume=True)
    _net().fit(X, y, **kw)
    other = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Dense(8, 16), nn.Tanh(),
                          nn.DropConnect(16, 3, p=0.3), seed=21)
    with pytest.raises(InvalidValueError, match=rf"^fit: cannot resume from checkpoint={str(ck)!r}: the checkpoint's "
                                                r"architecture differs from the model being fit \(module 1 is Dense"
                                                r".*'out_features': 16.* in the checkpoint and Dense.*'out_features': "
                                                r"8.* in the model\); resume with the model that wrote it\.$"):
        other.fit(X, y, **kw)
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(InvalidValueError, match=r"^fit: cannot resume from checkpoint='.*junk\.npz': not a droplab "
                                                r"model file \(not a zip archive\)\.$"):
        _net().fit(X, y, **{**kw, "checkpoint": tmp_path / "junk.npz"})
