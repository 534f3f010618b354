"""The main job's step path: the bench section ``main_job`` (FLOP count, structure, same-run
ratios) and the fused optimizer updates. No timing assertions."""

import numpy as np
import pytest

from droplab.lab._bench import main_job


def test_flop_count_of_the_default_experiment():
    # 40-256-256-10: 78,336 multiply-adds per row; the first layer's input gradient is not computed
    f = main_job.experiment_flops([40, 256, 256, 10], 4000, 1000, 100, 150, 6)
    macs, first = 40 * 256 + 256 * 256 + 256 * 10, 40 * 256
    assert f["train_per_run"] == 2 * 4000 * (3 * macs - first) * 150
    assert f["eval_per_run"] == 2 * 1000 * macs * 150 + 2 * 5000 * macs
    assert f["total"] == 6 * (f["train_per_run"] + f["eval_per_run"])
    assert 1.6e12 < f["total"] < 1.8e12  # the "about 1.7 TFLOP"
    # a last, short batch counts its own rows
    g = main_job.experiment_flops([3, 2], 250, 0, 100, 1, 1)
    assert g["train_per_run"] == 2 * 250 * (3 * 6 - 6)


@pytest.fixture(scope="module")
def section():
    pytest.importorskip("torch")
    return main_job.bench_main_job(tiny=True, torch_runs=1)


def test_main_job_section_ratios_come_from_this_run(section):
    s = section
    assert s["config"]["epochs"] == 1 and s["config"]["widths"] == [40, 256, 256, 10]
    assert s["config"]["droplab_argv"][:1] == ["compare"] and "--workers" in s["config"]["droplab_argv"]
    assert s["floor_s"] == pytest.approx(s["flops"]["total"] / s["gemm_flop_per_s"])
    med = {k: v["median_s"] for k, v in s["seconds"].items()}
    assert s["droplab_over_floor"] == pytest.approx(med["droplab"] / s["floor_s"])
    for name in s["config"]["torch_threads"]:
        assert s[f"droplab_vs_{name}"] == pytest.approx(med[name] / med["droplab"])
    assert s["droplab_vs_best_torch"] == pytest.approx(min(med[n] for n in s["config"]["torch_threads"])
                                                       / med["droplab"])
    assert s["torch_extrapolated"] == {"timed_runs": 1, "runs": 6}
    acc = s["accuracy"]["droplab"]
    assert set(acc) == {"no dropout", "dropout p=0.3"} and all(v["n"] == 3 for v in acc.values())
    assert all(len(v) == 1 for v in s["load_average_before"].values())


def test_main_job_tables_fit_the_report(section):
    from droplab.lab import bench

    tabs = bench.bench_tables({"main_job": section})
    assert [t["title"].split(":")[0] for t in tabs] == ["main job", "main job"]
