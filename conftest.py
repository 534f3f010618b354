"""Root conftest: doctest collection of the package skips modules whose optional extra is absent."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob.append("src/droplab/torch/*")
