"""``droplab bench``: dropout's speed and memory against baselines measured in the same run.

The measured cases live in :mod:`droplab.lab._bench` (the textbook float64 baseline in
:mod:`droplab.lab._bench.textbook`); this module runs them, prints the tables and writes
``results.json``. Figures are medians with their spread over at least 20 timed repeats after
warm-up (fewer only with ``--repeats``), implementations timed round-robin, and every ratio is
taken between medians of the same run. ``p`` is the drop probability throughout.
"""

from __future__ import annotations

import argparse

HELP = "speed and memory against baselines measured in the same run"

_SECTIONS = ("dropout", "spiral", "blas", "compile", "torch", "mc", "conv1d")


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab._validate import bounds_help, flag_type

    parser.add_argument("--quick", action="store_true",
                        help="one shape (3000x512), p = 0.5, 2 epochs per spiral repeat, warm compile only: under a minute")
    parser.add_argument("--sections", default=",".join(_SECTIONS),
                        help="comma-separated subset of: " + ", ".join(_SECTIONS))
    parser.add_argument("--repeats", type=flag_type("bench_repeats"), default=0,
                        help=f"timed repeats per figure ({bounds_help('bench_repeats')}: 21, or 20 with "
                             "--quick); claims need >= 20")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: tiny shapes


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from droplab import _validate
    from droplab.lab import _bench
    from droplab.lab._results import force_flag, results_dir, versions, write_json

    where = "bench"
    sections = [s.strip() for s in str(args.sections).split(",") if s.strip()]
    for s in sections:
        _validate.one_of(where, "sections", s, _SECTIONS)
    if not sections:
        raise ValueError(_validate.message(where, "sections", "one or more of " + ", ".join(_SECTIONS),
                                           args.sections))
    repeats = args.repeats
    if repeats != 0:
        repeats = _validate.positive_int(where, "repeats", repeats)
    console = Console(quiet=args.quiet, width=None if Console().is_terminal else 160)
    with results_dir(args.out, "bench", force=force_flag(args)) as tmp:
        with console.status("bench") as status:
            res = _bench.run_suite(quick=args.quick, tiny=args.tiny, repeats=repeats or None,
                                   sections=tuple(sections),
                                   progress=lambda what: status.update(f"bench: {what}"))
        results = {"command": "bench", "config": {"seed": args.seed, **res.pop("settings")},
                   "versions": versions(extra=("threadpoolctl",)), "machine": _bench.machine(), **res}
        write_json(tmp / "results.json", results)
    _print(console, results)
    console.print(f"results written to {args.out}/results.json")
    return 0




def _ms(st: dict) -> str:
    return f"{st['median_s'] * 1e3:.3f} [{st['q1_s'] * 1e3:.3f}-{st['q3_s'] * 1e3:.3f}]"


def _print(console, res: dict) -> None:
    from rich.table import Table

    m = res["machine"]
    console.print(f"[bold]droplab bench[/]  cpu: {m['cpu']} ({m['cores']} cores)  kernels: {m['kernels_backend']}  "
                  f"load: {', '.join(f'{v:.2f}' for v in m.get('load_average', []))}  git: {m.get('git_sha')}")
    d = res.get("dropout")
    if d:
        t = Table(title="dropout throughput, float32 (median [IQR] ms; ratios: same run)")
        for c in ("shape", "p", "phase", "impl"):
            t.add_column(c)
        for c in ("ms", "G elem/s", "GB/s", "droplab x faster", "of copyto", "of np.copy"):
            t.add_column(c, justify="right")
        for r in d["rows"]:
            t.add_row(r["shape"], f"{r['p']:g}", r["phase"], r["impl"], _ms(r), f"{r['gelem_per_s']:.3f}",
                      f"{r['effective_gb_per_s']:.1f}",
                      f"{r['droplab_speedup']:.1f}x" if "droplab_speedup" in r else "",
                      f"{r['fraction_of_copyto']:.0%}" if "fraction_of_copyto" in r else "",
                      f"{r['fraction_of_np_copy']:.0%}" if "fraction_of_np_copy" in r else "")
        console.print(t)
        t = Table(title="mask bytes held per element between forward and backward")
        impls = sorted({k for v in d["mask_bytes_per_element"].values() for k in v})
        t.add_column("shape")
        for i in impls:
            t.add_column(i, justify="right")
        for shape, v in d["mask_bytes_per_element"].items():
            t.add_row(shape, *(f"{v[i]:g}" if i in v else "" for i in impls))
        console.print(t)
    s = res.get("spiral")
    if s:
        t = Table(title=f"spiral epoch: {s['config']['samples']} samples, 2->{s['config']['hidden']}->3, "
                        f"dropout {s['config']['p']}, Adam, full batch")
        t.add_column("impl")
        t.add_column("ms / epoch (median [IQR])", justify="right")
        t.add_column("droplab x faster", justify="right")
        for name, st in s["per_epoch"].items():
            sp = s["speedup"].get(f"droplab_vs_{name}")
            t.add_row(name, _ms(st), f"{sp:.1f}x" if sp else "")
        console.print(t)
    b = res.get("blas")
    if b:
        t = Table(title="BLAS threads during training (median [IQR] ms)")
        t.add_column("case")
        cols = list(next(iter(b.values()))["times"])
        for c in cols:
            t.add_column(c, justify="right")
        for case, v in b.items():
            t.add_row(case, *(_ms(v["times"][c]) for c in cols))
        console.print(t)
    c = res.get("compile")
    if c:
        t = Table(title="numba compile cost in a fresh process (s)")
        t.add_column("cache")
        keys = ["import_numba_s", "apply_parallel_f32_s", "apply_serial_f32_s", "apply_parallel_f64_s",
                "first_fit_epoch_s", "total_s"]
        for k in keys:
            t.add_column(k.removesuffix("_s"), justify="right")
        for cache in ("cold", "warm"):
            v = c.get(cache)
            if v is None:
                t.add_row(cache, *(["skipped"] + [""] * (len(keys) - 1)))
            elif "error" in v:
                t.add_row(cache, v["error"], *[""] * (len(keys) - 1))
            else:
                t.add_row(cache, *(f"{v[k]:.2f}" for k in keys))
        console.print(t)
    tr = res.get("torch")
    if tr:
        if "skipped" in tr:
            console.print(f"torch modules: skipped ({tr['skipped']})")
        else:
            t = Table(title="droplab.torch.Dropout vs torch.nn.Dropout (ms, median)")
            for col in ("shape", "what", "droplab", "torch", "droplab x faster", "saved bytes droplab/torch"):
                t.add_column(col)
            for r in tr["result"]:
                t.add_row(r["shape"], r["what"], f"{r['droplab_ms']:.2f}", f"{r['torch_ms']:.2f}",
                          f"{r['speedup']:.1f}x", f"{r['saved_bytes_droplab']} / {r['saved_bytes_torch']}")
            console.print(t)
    mc = res.get("mc")
    if mc:
        if "skipped" in mc:
            console.print(f"mc_predict: skipped ({mc['skipped']})")
        else:
            hl = mc["result"]["headline"]
            console.print(f"mc_predict vs a loop of {hl['T']} passes on N={hl['N']}: "
                          f"{hl['mc_predict']['median_s'] * 1e3:.1f} ms vs {hl['loop']['median_s'] * 1e3:.1f} ms "
                          f"({hl['speedup']:.2f}x)")
    cv = res.get("conv1d")
    if cv:
        t = Table(title="Conv1d forward+backward, the MNIST-1D CNN's three layers (median [IQR] ms; droplab 1 BLAS "
                        "thread, torch 2 threads)")
        for col in ("batch", "droplab", "torch", "droplab / torch", "torch 1 thread", "droplab / torch 1 thread"):
            t.add_column(col, justify="right")
        for r in cv["rows"]:
            cells = [str(r["batch"]), _ms(r["droplab"])]
            for k in ("torch", "torch_1thread"):
                cells += [_ms(r[k]), f"{r['droplab_over_' + k]:.2f}"] if k in r else ["skipped", ""]
            t.add_row(*cells)
        console.print(t)
    h = res.get("headline") or {}
    if "forward_fraction_of_copyto" in h:
        def x(v):
            return f"{v:.1f}x" if v is not None else "n/a"
        console.print(f"[bold]headline[/]: forward {h['forward_shape']} p={h['forward_p']}, nn.Dropout (a new array per call): "
                      f"{h['forward_fraction_of_copyto']:.0%} of copyto bandwidth "
                      f"({h['forward_fraction_of_np_copy']:.0%} of np.copy), "
                      f"{x(h['forward_speedup_vs_textbook'])} textbook, {x(h['forward_speedup_vs_torch'])} torch "
                      f"F.dropout")
        if h.get("forward_out_fraction_of_copyto") is not None:
            console.print(f"[bold]headline[/]: the same kernel into a preallocated array: "
                          f"{h['forward_out_fraction_of_copyto']:.0%} of copyto bandwidth, "
                          f"{x(h['forward_out_speedup_vs_textbook'])} textbook, "
                          f"{x(h['forward_out_speedup_vs_torch'])} torch F.dropout")
        console.print(f"[bold]headline[/]: mask bytes/element {h['mask_bytes_per_element']}")
    if "spiral_speedup" in h:
        console.print("[bold]headline[/]: spiral epoch " + ", ".join(
            f"{k.replace('droplab_vs_', 'vs ')}: {v:.1f}x" for k, v in h["spiral_speedup"].items()))
