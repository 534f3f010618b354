"""The bench section ``main_job`` on its own: ``droplab compare`` (defaults) against the same
experiment in plain PyTorch and the GEMM-bound floor, in one process.

    python benchmarks/main_job.py [--quick] [--epochs N] [--rounds R] [--torch-runs K]

``--torch-runs K`` times only K of PyTorch's 6 runs per thread count and scales the time (on a
loaded machine PyTorch on 2 threads can take 10-20x its quiet time). Writes the section's dict
as JSON to stdout's last line and prints the bench tables.
"""

import argparse
import json
import os

from rich.console import Console

from droplab.lab import bench, tables
from droplab.lab._bench import machine
from droplab.lab._bench.main_job import bench_main_job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--torch-runs", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the section's dict here")
    a = ap.parse_args()
    res = bench_main_job(quick=a.quick, epochs=a.epochs, rounds=a.rounds, torch_runs=a.torch_runs,
                         progress=lambda what: print(what, os.getloadavg(), flush=True))
    full = {"main_job": res, "machine": machine()}
    console = Console()
    for t in bench.bench_tables(full):
        tables.show(console, t)
    for line in bench._headlines(full):
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(full, f, indent=1)


if __name__ == "__main__":
    main()
