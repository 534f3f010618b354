"""Torch section of ``droplab bench``: droplab.torch.Dropout against torch.nn.Dropout on the CPU.

``bench_torch(shapes, repeats)`` times forward and forward+backward of both modules on the
same seeded float32 input, in the same run, and returns one dict per (shape, what) with
medians, interquartile ranges and the speed-up ratio ``torch / droplab``. It also reports the
bytes autograd saves for backward (the mask: 0 for droplab's fast path). Run directly::

    python benchmarks/torch_bench.py [--repeats 21] [--shapes 3000x512,16M]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

SHAPES = {"3000x512": (3000, 512), "16M": (1 << 24,)}


def bench_torch(shapes=None, repeats: int = 21, p: float = 0.5) -> list[dict]:
    """Time ``droplab.torch.Dropout`` and ``torch.nn.Dropout`` on float32 CPU tensors.

    Args:
        shapes: dict ``name -> shape`` or iterable of shapes. Default ``SHAPES``
            (3000x512 and 16M elements).
        repeats (int): timed repeats per measurement after 3 warm-ups (>= 20 for a claim).
        p (float): drop probability. Default 0.5.

    Returns:
        One dict per (shape, ``"forward"`` | ``"forward+backward"``) with ``droplab_ms``,
        ``torch_ms`` (medians), their IQRs, ``speedup`` (torch / droplab), the saved bytes per
        forward of each, the kernels backend, torch's thread count and versions.
    """
    import torch

    import droplab.torch as dt
    from droplab import kernels
    from droplab.lab._bench import median_iqr, torch_saved_bytes

    if shapes is None:
        shapes = SHAPES
    if not isinstance(shapes, dict):
        shapes = {"x".join(map(str, s)): tuple(s) for s in shapes}
    rows = []
    gen = torch.Generator().manual_seed(0)
    for name, shape in shapes.items():
        x = torch.randn(shape, generator=gen)
        xg = x.clone().requires_grad_()
        dy = torch.randn(shape, generator=gen)
        ours, theirs = dt.Dropout(p, seed=0), torch.nn.Dropout(p)

        def fwd(m):
            return lambda: m(x)

        def fwd_bwd(m):
            def run():
                m(xg).backward(dy)
                xg.grad = None
            return run

        saved = {"droplab": torch_saved_bytes(torch, lambda: ours(xg)),
                 "torch": torch_saved_bytes(torch, lambda: theirs(xg))}
        for what, make in (("forward", fwd), ("forward+backward", fwd_bwd)):
            d_med, d_iqr = median_iqr(make(ours), repeats)
            t_med, t_iqr = median_iqr(make(theirs), repeats)
            rows.append({
                "section": "torch", "shape": name, "elements": int(np.prod(shape)), "dtype": "float32", "p": p,
                "what": what, "repeats": repeats,
                "droplab_ms": d_med * 1e3, "droplab_iqr_ms": d_iqr * 1e3,
                "torch_ms": t_med * 1e3, "torch_iqr_ms": t_iqr * 1e3,
                "speedup": t_med / d_med,
                "saved_bytes_droplab": saved["droplab"], "saved_bytes_torch": saved["torch"],
                "kernels_backend": kernels.backend(), "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
            })
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--shapes", default="3000x512,16M", help="comma-separated: 3000x512, 16M, 1M, ...")
    args = parser.parse_args(argv)
    shapes = {}
    for s in args.shapes.split(","):
        s = s.strip()
        shapes[s] = (int(s[:-1]) << 20,) if s.endswith("M") else tuple(int(v) for v in s.split("x"))
    rows = bench_torch(shapes, args.repeats)
    print(f"{'shape':>9} {'what':>17} {'droplab ms':>10} {'torch ms':>9} {'speed-up':>8} {'mask bytes saved':>17}")
    for r in rows:
        print(f"{r['shape']:>9} {r['what']:>17} {r['droplab_ms']:10.2f} {r['torch_ms']:9.2f} {r['speedup']:7.1f}x "
              f"{r['saved_bytes_droplab']:>6} vs {r['saved_bytes_torch']}")
    print(json.dumps({"kernels_backend": rows[0]["kernels_backend"], "torch_threads": rows[0]["torch_threads"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
