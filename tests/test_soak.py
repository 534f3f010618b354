"""Soak: 10,000 training steps with memory flat after warm-up.

Measured two ways at every 500th step after a 1,000-step warm-up: the number of live
Python-allocator blocks (``sys.getallocatedblocks()``: every Python object, every ndarray
header; a leaked array or closure per step shows up as thousands of blocks), and the
process's resident set (``/proc/self/statm``, else ``resource``'s peak), which also sees array
data. ``tracemalloc`` is not used over the whole run: it makes each step several times slower.

The only memory that may legitimately grow is ``fit``'s history: one float per key per
epoch. The tolerances are that, bounded from above, plus a fixed allowance for one-off caches.
"""

from __future__ import annotations

import gc
import os
import resource
import sys

import numpy as np
import pytest

from droplab import nn

STEPS = 10_000
WARMUP = 1_000
BATCH, N = 8, 64  # 8 steps per epoch, so 1,250 epochs
KEYS = 4  # loss, accuracy, val_loss, val_accuracy
# history: per key and epoch one float object (one block; 24 B) and a list slot (8 B, with
# CPython's ~1/8 over-allocation), rounded up to 40 B
HISTORY_BLOCKS_PER_EPOCH, HISTORY_BYTES_PER_EPOCH = KEYS, KEYS * 40
BLOCK_ALLOWANCE = 2_000  # one-off caches (method caches, dict resizes); a per-step leak is >= 9,000
RSS_ALLOWANCE = 4 * 1024 * 1024  # allocator arenas and page granularity; a 1 KiB/step leak is 9 MiB


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: the peak resident set (KiB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@pytest.mark.slow
def test_ten_thousand_steps_keep_memory_flat(rng, capsys):
    X = rng.standard_normal((N, 16)).astype(np.float32)
    y = rng.integers(0, 4, N)
    model = nn.Sequential(nn.Dense(16, 32), nn.ReLU(), nn.Dropout(0.3), nn.Dense(32, 32), nn.Tanh(),
                          nn.GaussianDropout(0.2), nn.Dense(32, 4), seed=0)
    samples: dict[int, tuple[int, int]] = {}

    class Probe:
        def on_batch_end(self, step, model):
            if step % 500 == 0 and step >= WARMUP:
                gc.collect()
                samples[step] = (sys.getallocatedblocks(), _rss())

    history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-3), epochs=STEPS // (N // BATCH),
                        batch_size=BATCH, validation_data=(X[:16], y[:16]), verbose=False, callbacks=[Probe()])
    assert len(history["loss"]) * (N // BATCH) == STEPS and np.isfinite(history["loss"]).all()
    epochs_after = (STEPS - WARMUP) // (N // BATCH)
    blocks = {s: b for s, (b, _) in samples.items()}
    rss = {s: r for s, (_, r) in samples.items()}
    block_growth = max(blocks.values()) - blocks[WARMUP]
    rss_growth = max(rss.values()) - rss[WARMUP]
    block_tol = epochs_after * HISTORY_BLOCKS_PER_EPOCH + BLOCK_ALLOWANCE
    rss_tol = epochs_after * HISTORY_BYTES_PER_EPOCH + RSS_ALLOWANCE
    with capsys.disabled():
        sys.stdout.write(
            f"\n[soak] {STEPS} steps: blocks {blocks[WARMUP]} -> {blocks[STEPS]} (max growth {block_growth}, "
            f"tolerance {block_tol}); RSS {rss[WARMUP] / 2**20:.1f} -> {rss[STEPS] / 2**20:.1f} MiB "
            f"(max growth {rss_growth / 2**10:.0f} KiB, tolerance {rss_tol / 2**10:.0f} KiB)\n")
    assert block_growth <= block_tol
    assert rss_growth <= rss_tol
