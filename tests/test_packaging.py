"""Packaging facts users rely on: `python -m droplab`, the license, declared dependencies, the
README's code running as written, install hints that point at what works."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import droplab

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_python_dash_m_droplab_version():
    r = subprocess.run([sys.executable, "-m", "droplab", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"droplab {droplab.__version__}"


def test_license_file_matches_pyproject():
    assert PYPROJECT["project"]["license"] == "MIT"  # the SPDX string form (PEP 639)
    assert "LICENSE" in PYPROJECT["project"]["license-files"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_declared_floors_cover_what_the_code_uses():
    deps = PYPROJECT["project"]["dependencies"]
    numpy_floor = next(d for d in deps if d.startswith("numpy"))
    # Generator.spawn (droplab uncertainty) needs numpy 1.25
    assert tuple(int(x) for x in re.search(r">=([\d.]+)", numpy_floor)[1].split(".")[:2]) >= (1, 25)
    # sweep --config reads TOML: tomllib on 3.11+, tomli before
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d for d in deps)


def _readme_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if containing in b)


def test_readme_gradcheck_example_runs_as_written():
    code = "import numpy as np\nfrom droplab import nn\n" + _readme_block("gradcheck")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().split() == ["True"]


def test_missing_torch_hint_points_at_a_cpu_build():
    code = "import sys; sys.modules['torch'] = None\ntry:\n import droplab.torch\nexcept ImportError as e:\n print(e)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "whl/cpu" in r.stdout and "'.[torch]'" in r.stdout and "droplab[torch]" not in r.stdout


@pytest.mark.parametrize("path", ["README.md", "src"])
def test_no_instruction_installs_droplab_from_an_index(path):
    # droplab is not on a package index: `pip install 'droplab[torch]'` cannot work
    files = [ROOT / path] if path.endswith(".md") else sorted((ROOT / path).rglob("*.py"))
    for f in files:
        assert "pip install 'droplab" not in f.read_text(), f
