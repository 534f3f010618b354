"""What to install when an optional package is missing: the one hint every message uses."""

#: How to get droplab's torch extra without pulling a multi-GB CUDA build (README: Install).
TORCH_HINT = ("install a CPU build of PyTorch (`pip install torch --index-url https://download.pytorch.org/whl/cpu`; "
              "on the project's machine `pip install torch==2.13.0`), then `pip install '.[torch]'` in droplab's "
              "folder (README: Install)")
