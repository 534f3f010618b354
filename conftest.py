"""Root conftest: doctest collection of the package skips modules whose optional extra is absent."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    # the modules that import torch at module level (the rest import it inside functions)
    collect_ignore_glob += ["src/droplab/torch/*", "src/droplab/lab/torch_runner.py", "src/droplab/lab/_bench/torch_*.py",
                            "src/droplab/doctor/model.py"]  # its doctest builds a torch model
