"""``droplab bench``: dropout's speed and memory against baselines measured in the same run.

The measured cases live in :mod:`droplab.lab._bench` (the textbook float64 baseline in
:mod:`droplab.lab._bench.textbook`); this module runs them, prints the tables and writes
``results.json``. Figures are medians with their spread over at least 20 timed repeats after
warm-up (fewer only with ``--repeats``), implementations timed round-robin, and every ratio is
taken between medians of the same run. ``p`` is the drop probability throughout.
"""

from __future__ import annotations
from droplab.errors import InvalidValueError

import argparse

HELP = "speed and memory against baselines measured in the same run"

_SECTIONS = ("dropout", "spiral", "blas", "compile", "torch", "mc", "conv1d", "main_job")


def configure(parser: argparse.ArgumentParser) -> None:
    from droplab._validate import bounds_help, flag_type

    parser.add_argument("--quick", action="store_true",
                        help="one shape (3000x512), p = 0.5, 2 epochs per spiral repeat, warm compile only, "
                             "the main job at 10 epochs")
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
    from droplab.lab._results import done_line, force_flag, results_dir, versions, write_json

    where = "bench"
    sections = [s.strip() for s in str(args.sections).split(",") if s.strip()]
    for s in sections:
        _validate.one_of(where, "sections", s, _SECTIONS)
    if not sections:
        raise InvalidValueError(_validate.message(where, "sections", "one or more of " + ", ".join(_SECTIONS),
                                           args.sections))
    repeats = args.repeats
    if repeats != 0:
        repeats = _validate.positive_int(where, "repeats", repeats)
    console = Console(quiet=args.quiet)
    with results_dir(args.out, "bench", force=force_flag(args)) as tmp:
        with console.status("bench") as status:
            res = _bench.run_suite(quick=args.quick, tiny=args.tiny, repeats=repeats or None,
                                   sections=tuple(sections),
                                   progress=lambda what: status.update(f"bench: {what}"))
        results = {"command": "bench", "config": {"seed": args.seed, **res.pop("settings")},
                   "versions": versions(extra=("threadpoolctl",)), "machine": _bench.machine(), **res}
        results["tables"] = bench_tables(results)
        results["reading"] = _headlines(results)
        write_json(tmp / "results.json", results)
    _print(console, results)
    done_line(console, args.out, ["results.json"])
    return 0


def _ms(st: dict) -> str:
    return f"{st['median_s'] * 1e3:.3f} [{st['q1_s'] * 1e3:.3f}-{st['q3_s'] * 1e3:.3f}]"


def bench_tables(res: dict) -> list[dict]:
    """Every bench table as the terminal prints it and the report shows it (:mod:`droplab.lab.tables`)."""
    from droplab.lab import tables

    out = []
    note = "ms: median [interquartile range] of the timed repeats; ratios between medians of this run"
    d = res.get("dropout")
    if d:
        phase = {"forward": "fwd", "backward": "bwd", "forward+backward": "fwd+bwd"}
        rows = [[f"{r['shape']} p={r['p']:g} {phase.get(r['phase'], r['phase'])}", r["impl"], _ms(r),
                 f"{r['droplab_speedup']:.1f}x" if "droplab_speedup" in r else "",
                 f"{r['fraction_of_copyto']:.0%}" if "fraction_of_copyto" in r else "",
                 f"{r['effective_gb_per_s']:.1f}", f"{r['gelem_per_s']:.3f}",
                 f"{r['fraction_of_np_copy']:.0%}" if "fraction_of_np_copy" in r else ""] for r in d["rows"]]
        out.append(tables.table("dropout throughput, float32", ["case", "impl", "ms", "droplab faster",
                                                                 "of copyto", "GB/s", "Gelem/s", "of np.copy"],
                                rows, note=note, left=2, drop=("of np.copy", "Gelem/s", "GB/s", "of copyto")))
        impls = sorted({k for v in d["mask_bytes_per_element"].values() for k in v})
        out.append(tables.table("mask bytes held per element between forward and backward", ["shape", *impls],
                                [[shape, *(f"{v[i]:g}" if i in v else "" for i in impls)]
                                 for shape, v in d["mask_bytes_per_element"].items()]))
    s = res.get("spiral")
    if s:
        rows = [[name, _ms(st), f"{s['speedup'][f'droplab_vs_{name}']:.1f}x" if f"droplab_vs_{name}" in s["speedup"]
                 else ""] for name, st in s["per_epoch"].items()]
        out.append(tables.table(f"spiral epoch: {s['config']['samples']} samples, 2->{s['config']['hidden']}->3, "
                                f"dropout {s['config']['p']}, Adam, full batch",
                                ["impl", "ms/epoch", "droplab faster"], rows, note=note))
    b = res.get("blas")
    if b:
        cols = list(next(iter(b.values()))["times"])
        out.append(tables.table("BLAS threads during training", ["case", *(c.replace("_", " ") + " (ms)" for c in cols)],
                                [[case, *(_ms(v["times"][c]) for c in cols)] for case, v in b.items()], note=note))
    c = res.get("compile")
    if c:
        keys = [("import_numba_s", "import numba"), ("apply_parallel_f32_s", "f32 par."),
                ("apply_serial_f32_s", "f32 serial"), ("apply_parallel_f64_s", "f64 par."),
                ("first_fit_epoch_s", "1st epoch"), ("total_s", "total")]
        rows = []
        for cache in ("cold", "warm"):
            v = c.get(cache)
            if v is None:
                rows.append([cache, "skipped", *[""] * (len(keys) - 1)])
            elif "error" in v:
                rows.append([cache, v["error"][:30], *[""] * (len(keys) - 1)])
            else:
                rows.append([cache, *(f"{v[k]:.2f}" for k, _ in keys)])
        out.append(tables.table("numba compile cost in a fresh process (s)", ["cache", *(h for _, h in keys)], rows))
    tr = res.get("torch")
    if tr and "skipped" not in tr:
        out.append(tables.table("droplab.torch.Dropout vs torch.nn.Dropout (ms, median)",
                                ["shape", "what", "droplab", "torch", "droplab faster", "saved bytes d/t"],
                                [[r["shape"], r["what"], f"{r['droplab_ms']:.2f}", f"{r['torch_ms']:.2f}",
                                  f"{r['speedup']:.1f}x", f"{r['saved_bytes_droplab']} / {r['saved_bytes_torch']}"]
                                 for r in tr["result"]], left=2, drop=("saved bytes d/t",)))
    cv = res.get("conv1d")
    if cv:
        rows = [[str(r["batch"]), f"{r['droplab']['median_s'] * 1e3:.3f}",
                 *(cell for k in ("torch", "torch_1thread") for cell in
                   ((f"{r[k]['median_s'] * 1e3:.3f}", f"{r['droplab_over_' + k]:.2f}") if k in r else ("skipped", "")))]
                for r in cv["rows"]]
        out.append(tables.table("Conv1d forward+backward, the MNIST-1D CNN's 3 layers",
                                ["batch", "droplab ms", "torch ms", "ratio", "torch 1 thread ms", "ratio 1 thread"],
                                rows, note="ms: medians (quartiles in results.json); droplab on 1 BLAS thread, as fit "
                                           "trains, torch on 2; ratio: droplab's time over torch's (< 1: droplab "
                                           "faster)"))
    mj = res.get("main_job")
    if mj:
        c = mj["config"]
        floor = mj["floor_s"]
        rows = []
        threads = c["torch_threads"] or {}
        for name in ("droplab", *threads):
            label = (f"droplab compare --workers {c['workers']}" if name == "droplab" else
                     f"PyTorch, {threads[name]} thread{'s' if threads[name] > 1 else ''}")
            st = mj["seconds"].get(name)
            if st is None:
                rows.append([label, "skipped", "", "", "", ""])
                continue
            cs = mj.get("cpu_s", {}).get(name)
            rows.append([label, f"{st['median_s']:.1f} [{st['min_s']:.1f}-{st['max_s']:.1f}]",
                         f"{st['median_s'] / floor:.2f}x",
                         f"{mj['droplab_vs_' + name]:.2f}x" if name != "droplab" else "",
                         f"{cs['median_s']:.1f}" if cs else "",
                         f"{mj['droplab_cpu_vs_' + name]:.2f}x" if cs and name != "droplab" else ""])
        rows.append([f"GEMM floor, {mj['gemm_flop_per_s'] / 1e9:.0f} GF/s", f"{floor:.1f}", "1.00x", "",
                     f"{mj['floor_core_s']:.1f}" if "floor_core_s" in mj else "", ""])
        acc = mj["accuracy"]
        arows = [[impl, arm, f"{v['mean'] * 100:.1f}", f"{v['min'] * 100:.1f}-{v['max'] * 100:.1f}"]
                 for impl, arms in acc.items() for arm, v in arms.items() if v["mean"] is not None]
        out.append(tables.table(
            f"main job: {c['dataset']} MLP {'-'.join(map(str, c['widths']))}, {len(c['seeds'])} seeds x "
            f"{len(c['arms'])} arms, {c['epochs']} epochs, batch {c['batch_size']}",
            ["impl", "s", "of floor", "droplab faster", "cpu s", "cpu ratio"], rows, drop=("cpu ratio", "cpu s"),
            note=f"s: wall, median [min-max] of {c['rounds']} round(s), taking turns; cpu s: CPU seconds of every "
                 f"thread and worker (floor: in core-seconds); floor: {mj['flops']['total'] / 1e12:.2f} TFLOP of "
                 "matrix products at the large-GEMM rate measured in this run"))
        out.append(tables.table("main job: validation accuracy (%) per arm", ["impl", "arm", "mean", "range"], arows, left=2))
    return out


def _headlines(res: dict) -> list[str]:
    out = []
    m = res["machine"]
    out.append(f"cpu: {m['cpu']} ({m['cores']} cores), kernels: {m['kernels_backend']}, load: "
               f"{', '.join(f'{v:.2f}' for v in m.get('load_average', []))}, git: {m.get('git_sha')}")
    for name in ("torch", "mc"):
        sec = res.get(name)
        if sec and "skipped" in sec:
            out.append(f"{'torch modules' if name == 'torch' else 'mc_predict'}: skipped ({sec['skipped']})")
    mc = res.get("mc")
    if mc and "skipped" not in mc:
        hl = mc["result"]["headline"]
        vs = (f", {hl['speedup_vs_torch']:.2f}x faster than a loop of {hl['T']} PyTorch passes "
              f"({hl['torch']['median_s'] * 1e3:.0f} ms)" if hl.get("torch") else ", PyTorch not installed")
        out.append(f"mc_predict, T={hl['T']} on N={hl['N']}: {hl['mc_predict']['median_s'] * 1e3:.0f} ms, "
                   f"{hl['fraction_of_gemm_bound']:.0%} of the GEMM-bound time ({hl['gemm_bound_s'] * 1e3:.0f} ms){vs}")
    mj = res.get("main_job")
    if mj:
        vs = (f", {mj['droplab_vs_torch']:.2f}x faster than PyTorch on the usable cores and "
              f"{mj['droplab_vs_best_torch']:.2f}x faster than its faster thread count" if "droplab_vs_torch" in mj else "")
        if "torch_extrapolated" in mj:
            e = mj["torch_extrapolated"]
            vs += f" (PyTorch timed on {e['timed_runs']} of {e['runs']} runs, scaled)"
        out.append(f"main job: droplab compare {mj['seconds']['droplab']['median_s']:.1f} s, "
                   f"{mj['droplab_over_floor']:.2f}x the GEMM-bound floor ({mj['floor_s']:.1f} s){vs}")
        if "droplab_cpu_over_floor" in mj:
            cpu = ", ".join(f"{mj['droplab_cpu_vs_' + n]:.2f}x less than {n}" for n in (mj["config"]["torch_threads"] or {})
                            if "droplab_cpu_vs_" + n in mj)
            out.append(f"main job, CPU seconds: droplab {mj['cpu_s']['droplab']['median_s']:.1f} "
                       f"({mj['droplab_cpu_over_floor']:.2f}x the floor's core-seconds){', ' + cpu if cpu else ''}")
    h = res.get("headline") or {}
    if "forward_fraction_of_copyto" in h:
        def x(v):
            return f"{v:.1f}x" if v is not None else "n/a"
        out.append(f"headline: forward {h['forward_shape']} p={h['forward_p']}, nn.Dropout (a new array per call): "
                   f"{h['forward_fraction_of_copyto']:.0%} of copyto bandwidth "
                   f"({h['forward_fraction_of_np_copy']:.0%} of np.copy), {x(h['forward_speedup_vs_textbook'])} "
                   f"textbook, {x(h['forward_speedup_vs_torch'])} torch F.dropout")
        if h.get("forward_out_fraction_of_copyto") is not None:
            out.append(f"headline: the same kernel into a preallocated array: {h['forward_out_fraction_of_copyto']:.0%} "
                       f"of copyto bandwidth, {x(h['forward_out_speedup_vs_textbook'])} textbook, "
                       f"{x(h['forward_out_speedup_vs_torch'])} torch F.dropout")
        out.append(f"headline: mask bytes/element {h['mask_bytes_per_element']}")
    if "spiral_speedup" in h:
        out.append("headline: spiral epoch " + ", ".join(
            f"{k.replace('droplab_vs_', 'vs ')}: {v:.1f}x" for k, v in h["spiral_speedup"].items()))
    return out


def _print(console, res: dict) -> None:
    from droplab.lab import tables

    for t in res["tables"]:
        tables.show(console, t)
    for line in res["reading"]:
        console.print(line, soft_wrap=False, highlight=False, markup=False)
