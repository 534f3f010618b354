"""A fuzz corpus of damaged data and model files: every one gives a clean error.

The corpus is made here, in ``tmp_path``, from small valid files: truncations at many
lengths, garbage, and hand-forged archives and CSVs that are wrong in one way each. Each data
file goes through ``droplab compare --dataset FILE`` and each model file through
``droplab uncertainty --model FILE`` (where that command is registered) and ``nn.load``:
exit status 2, exactly one line on stderr, no traceback, no results folder left behind.
"""

from __future__ import annotations

import io as _io
import json

import numpy as np
import pytest

from droplab import cli, nn

_rng = np.random.default_rng(0)
_X = _rng.standard_normal((60, 2)).astype(np.float32)
_Y = np.arange(60) % 3


def _npz(**arrays) -> bytes:
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _truncations(blob: bytes, n: int = 10) -> list[bytes]:
    # every cut removes at least the zip's end record, so none of these is a readable archive
    return [blob[: int(len(blob) * k / (n + 1))] for k in range(n + 1)]


def _csv(text: str) -> bytes:
    return text.encode()


GOOD_CSV = "a,b,label\n" + "".join(f"{x:.3f},{z:.3f},{c}\n" for (x, z), c in zip(_X, _Y))

DATA_NPZ: dict[str, bytes] = {
    **{f"trunc{i}": b for i, b in enumerate(_truncations(_npz(X=_X, y=_Y)))},
    "garbage": bytes(_rng.integers(0, 256, 500, dtype=np.uint8)),
    "text": b"X,y\n1,2\n",
    "no_X": _npz(y=_Y),
    "no_y": _npz(X=_X),
    "y_short": _npz(X=_X, y=_Y[:-1]),
    "X_nan": _npz(X=np.where(_X > 1, np.nan, _X), y=_Y),
    "X_inf": _npz(X=np.where(_X > 1, np.inf, _X), y=_Y),
    "X_1d": _npz(X=_X[:, 0], y=_Y),
    "X_str": _npz(X=_X.astype(str), y=_Y),
    "X_complex": _npz(X=_X.astype(np.complex64), y=_Y),
    "X_empty": _npz(X=np.zeros((0, 2), np.float32), y=np.zeros(0, np.int64)),
    "y_float": _npz(X=_X, y=_Y + 0.5),
    "y_2d": _npz(X=_X, y=np.eye(3)[_Y]),
    "val_half": _npz(X=_X, y=_Y, X_val=_X),
    "val_shape": _npz(X=_X, y=_Y, X_val=np.ones((5, 3), np.float32), y_val=np.zeros(5, np.int64)),
    "single_npy": (lambda b: (np.save(b, _X), b.getvalue())[1])(_io.BytesIO()),
    "bad_header": _npz(X=_X, y=_Y).replace(b"\x93NUMPY", b"\x93NUMPZ", 1),
    "one_row": _npz(X=_X[:1], y=_Y[:1]),
}

DATA_CSV: dict[str, bytes] = {
    "empty": b"",
    "blank_lines": b"\n\n  \n",
    "header_only": b"a,b,label\n",
    "no_label_col": _csv("a,b,c\n1,2,0\n3,4,1\n"),
    "label_only": _csv("label\n0\n1\n"),
    "ragged": _csv("a,b,label\n1,2,0\n3,1\n"),
    "too_many": _csv("a,b,label\n1,2,0,9\n"),
    "not_number": _csv("a,b,label\n1,x,0\n3,4,1\n"),
    "empty_cell": _csv("a,b,label\n1,,0\n3,4,1\n"),
    "nan_cell": _csv("a,b,label\n1,nan,0\n3,4,1\n"),
    "inf_cell": _csv("a,b,label\n1,inf,0\n3,4,1\n"),
    "empty_label": _csv("a,b,label\n1,2,\n3,4,1\n"),
    "dup_header": _csv("a,a,label\n1,2,0\n3,4,1\n"),
    "latin1": "a,b,label\n1,2,é\n".encode("latin-1"),
    "nul_byte": b"a,b,label\n1,\x002,0\n3,4,1\n",
    "neg_label": _csv("a,b,label\n1,2,-1\n3,4,1\n"),
    "one_row": _csv("a,b,label\n1,2,0\n"),
    "binary": bytes(_rng.integers(0, 256, 300, dtype=np.uint8)),
    **{f"trunc{i}": GOOD_CSV.encode()[:n] for i, n in enumerate((3, 8, 11))},
}


def _model_blob() -> bytes:
    import tempfile
    from pathlib import Path

    model = nn.Sequential(nn.Dense(2, 8), nn.ReLU(), nn.Dropout(0.2), nn.Dense(8, 3), seed=0)
    with tempfile.TemporaryDirectory() as d:
        model.save(Path(d) / "m.npz", optimizer=nn.Adam())
        return (Path(d) / "m.npz").read_bytes()


def _forge(edit_spec=None, edit_arrays=None) -> bytes:
    with np.load(_io.BytesIO(_model_blob()), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    spec = json.loads(arrays.pop("__spec__").tobytes())
    if edit_spec:
        edit_spec(spec)
    if edit_arrays:
        edit_arrays(arrays)
    text = spec if isinstance(spec, str) else json.dumps(spec)
    return _npz(__spec__=np.frombuffer(text.encode(), np.uint8), **arrays)


def _set(path, value):
    def edit(spec):
        node = spec
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _arr(name, value):
    def edit(arrays):
        arrays[name] = value
    return edit


MODEL: dict[str, bytes] = {
    **{f"trunc{i}": b for i, b in enumerate(_truncations(_model_blob()))},
    "empty": b"",
    "garbage": bytes(_rng.integers(0, 256, 400, dtype=np.uint8)),
    "data_file": _npz(X=_X, y=_Y),
    "spec_not_json": _npz(__spec__=np.frombuffer(b"{not json", np.uint8)),
    "spec_str_array": _npz(__spec__=np.array(["{}"])),
    "spec_nan": _npz(__spec__=np.frombuffer(b'{"format": NaN}', np.uint8)),
    "spec_list": _npz(__spec__=np.frombuffer(b"[1, 2]", np.uint8)),
    "wrong_format": _forge(_set(["format"], "other")),
    "newer_version": _forge(_set(["format_version"], 99)),
    "bad_version": _forge(_set(["format_version"], "1")),
    "unknown_layer": _forge(_set(["model", "children", 1, "type"], "os.system")),
    "private_layer": _forge(_set(["model", "children", 1, "type"], "_Elementwise")),
    "base_class": _forge(_set(["model", "children", 1, "type"], "Module")),
    "bad_config": _forge(_set(["model", "children", 2, "config", "p"], 2.0)),
    "config_dict": _forge(_set(["model", "children", 2, "config", "p"], {"x": 1})),
    "config_unknown_arg": _forge(_set(["model", "children", 2, "config", "q"], 1)),
    "huge_layer": _forge(_set(["model", "children", 0, "config", "in_features"], 10**9)),
    "shape_mismatch": _forge(_set(["model", "children", 0, "config", "in_features"], 3)),
    "bad_key": _forge(_set(["model", "children", 2, "key"], [1, 2**40])),
    "bad_counter": _forge(_set(["model", "children", 2, "counter"], -1)),
    "declared_shape": _forge(_set(["arrays", "param/0", "shape"], [2, 9])),
    "missing_param": _forge(edit_arrays=lambda a: a.pop("param/3")),
    "int_param": _forge(lambda s: s["arrays"]["param/0"].update(dtype="int64"),
                        _arr("param/0", np.zeros((2, 8), np.int64))),
    "nan_param": _forge(edit_arrays=_arr("param/0", np.full((2, 8), np.nan, np.float32))),
    "object_param": _forge(edit_arrays=_arr("param/0", np.array([None, 1], dtype=object))),
    "str_param": _forge(edit_arrays=_arr("param/0", np.array(["a", "b"]))),
    "no_children": _forge(_set(["model", "children"], "layers")),
    "bad_child_args": _forge(_set(["model", "child_args"], {"*layers": [0, 0, 7]})),
    "bad_optimizer": _forge(_set(["optimizer", "type"], "Evil")),
    "bad_loss": _forge(_set(["loss"], {"type": "eval", "config": {}})),
    "bad_shuffle": _forge(_set(["shuffle"], {"generator": {"bit_generator": "MT19937"}})),
    "deep": _npz(__spec__=np.frombuffer(json.dumps({
        "format": "droplab-model", "format_version": 1, "arrays": {"__x": 1},
        "model": {"type": "Sequential", "config": {}, "children": [{}] * 3}}).encode(), np.uint8)),
}

CORPUS = ([("data", f"{k}.npz", v) for k, v in DATA_NPZ.items()]
          + [("data", f"{k}.csv", v) for k, v in DATA_CSV.items()]
          + [("model", f"{k}.npz", v) for k, v in MODEL.items()])


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 50 and len({(kind, name) for kind, name, _ in CORPUS}) == len(CORPUS)


def _one_clean_line(capsys, code):
    out = capsys.readouterr()
    assert code == 2, out.err
    assert out.err.count("\n") == 1 and out.err.startswith("droplab ") and "Traceback" not in out.err, out.err
    return out.err


@pytest.mark.parametrize("kind,name,blob", CORPUS, ids=[f"{k}-{n}" for k, n, _ in CORPUS])
def test_damaged_file_gives_one_clean_error(tmp_path, capsys, kind, name, blob):
    path = tmp_path / "in" / name
    path.parent.mkdir()
    path.write_bytes(blob)
    out = tmp_path / "out"
    small = ["--hidden", "4", "--epochs", "1", "--seeds", "1", "--quiet", "--out", str(out)]
    if kind == "data":
        err = _one_clean_line(capsys, cli.main(["compare", "--dataset", str(path), *small]))
        assert "data.load" in err and str(path) in err
    else:
        with pytest.raises(ValueError, match=r"^nn\.load: cannot use '.*': .+\.$"):
            nn.load(path)
        if "uncertainty" in cli.COMMANDS:
            err = _one_clean_line(capsys, cli.main(["uncertainty", "--dataset", "spiral", "--model", str(path),
                                                    "--epochs", "1", "--quiet", "--out", str(out)]))
            assert "nn.load" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert [p.name for p in path.parent.iterdir()] == [name]  # nothing written beside the input either


def test_negative_labels_are_classes_not_damage(tmp_path, capsys):
    # labels map through their sorted distinct values (as scikit-learn's classes_): {-1, 0, 1}
    # is three classes, as {0, 1, 2} is
    path = tmp_path / "neg.npz"
    path.write_bytes(_npz(X=_X, y=_Y - 1))
    out = tmp_path / "out"
    code = cli.main(["compare", "--dataset", str(path), "--hidden", "4", "--epochs", "1", "--seeds", "1",
                     "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "results.json").exists()
