"""droplab.kernels: Philox known answers, numba == reference bit for bit, exact scaling, mask statistics.

Statistical checks use 5-sigma bounds derived from the number of independent draws, so each
fails by chance with probability about 5.7e-7 (two-sided normal tail at z = 5), whatever the
session seed.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from droplab import kernels
from droplab.kernels import _reference

Z = 5.0  # two-sided tail at 5 sigma: P(|N(0,1)| > 5) ~= 5.7e-7 per check

# Random123's known-answer vectors for Philox4x32-10: (counter, key) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

# Thresholds 0, 1, 4096, ..., 2**32 - 1 and 2**32: both edges and the first steps inside them.
P_VALUES = [0.0, 2.0**-32, 2.0**-20, 0.1, 0.3, 0.4, 0.5, 0.9, 1 - 2.0**-20, 1 - 2.0**-32, 1.0]
COUNTERS = [0, 1, 2**32 - 1, 2**32, 2**40 + 3, 2**64 - 1]
# Around the 4-element block, the 128-element step and the 8192-element chunk; (65_537,) takes
# the parallel path (SERIAL_BELOW = 2**16), the rest the serial one.
SHAPES = [(), (0,), (1,), (3,), (4,), (5,), (7,), (13,), (129,), (8191,), (8193,), (3, 8192 + 5), (65_537,),
          (2, 3, 5), (4, 0, 3)]


def _numba_module():
    if os.environ.get("DROPLAB_KERNELS", "").strip().lower() == "numpy":
        pytest.skip("DROPLAB_KERNELS=numpy: the numba path is switched off")
    pytest.importorskip("numba")
    from droplab.kernels import _numba

    return _numba


@pytest.fixture(params=["numba", "numpy"])
def backend(request, monkeypatch):
    """Runs the public API on each backend in turn (the resolved choice is restored after)."""
    if request.param == "numba":
        monkeypatch.setattr(kernels, "_fast", _numba_module())
    else:
        monkeypatch.setattr(kernels, "_fast", None)
    monkeypatch.setattr(kernels, "_backend_name", request.param)
    return request.param


def _key(rng) -> tuple[int, int]:
    k = rng.integers(0, 2**32, size=2, dtype=np.uint64)
    return int(k[0]), int(k[1])


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Byte-for-byte equality, so -0.0 vs 0.0 and NaN payloads count."""
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)
    )


def _oracle_apply(x, p, key, counter, scale):
    return _reference.apply(np.asarray(x), kernels.threshold(p), scale, key, counter)


def _oracle_mask_values(shape, p, key, counter, scale, dtype):
    n = int(np.prod(shape, dtype=np.int64))
    m = _reference.keep_mask(n, kernels.threshold(p), key, counter).astype(dtype)
    m *= np.dtype(dtype).type(scale)
    return m.reshape(shape)


# --- Philox known answers -------------------------------------------------------------------


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_reference_philox_known_answers(counter, key, expected):
    out = _reference.philox4x32(*[np.array([c], dtype=np.uint64) for c in counter], *key)
    assert tuple(int(w[0]) for w in out) == expected


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_numba_philox_known_answers(counter, key, expected):
    assert _numba_module().philox4x32(counter, key) == expected


@pytest.mark.parametrize("first_block", [0, 2**32 - 3, 2**62 - 2])
def test_numba_words_past_32_bit_block_index(first_block, rng):
    # Block indices >= 2**32 need an array of 16G elements; check the block loop directly.
    fast = _numba_module()
    key, counter = _key(rng), 2**40 + 3
    j = np.arange(first_block, first_block + 5, dtype=np.uint64)
    words = _reference.philox4x32(j & np.uint64(0xFFFFFFFF), j >> np.uint64(32), counter & 0xFFFFFFFF,
                                  counter >> 32, *key)
    expected = np.stack(words, axis=1).reshape(-1)  # one whole word per element, w0..w3 per block
    got = fast.words(first_block, 5, key, counter)
    assert got.dtype == np.uint32 and np.array_equal(got, expected)


def test_reference_words_are_the_philox_output_in_element_order(rng):
    key, counter = _key(rng), 2**33 + 5
    w = _reference.words(10, key, counter)
    for i in range(10):
        block = _reference.philox4x32(np.uint64(i // 4), 0, counter & 0xFFFFFFFF, counter >> 32, *key)
        assert w[i] == block[i % 4]


# --- bit identity of the public API with the reference --------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_matches_reference_bitwise(backend, shape, dtype, rng):
    key = _key(rng)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::5] = -0.0  # signed zeros must survive as the reference leaves them
    for p in P_VALUES:
        for counter in COUNTERS:
            scale = kernels.keep_scale(p)
            y = kernels.apply(x, p, key, counter, scale)
            assert _same_bits(y, _oracle_apply(x, p, key, counter, scale)), (p, counter)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 2.5, -3.0, 0.0])
def test_apply_matches_reference_for_any_scale(backend, dtype, scale, rng):
    # Classic dropout passes scale=1; a negative scale makes dropped elements -0.0 * sign(x).
    key = _key(rng)
    x = rng.standard_normal(10_001).astype(dtype)
    for p in (0.0, 0.3, 1.0):
        assert _same_bits(kernels.apply(x, p, key, 5, scale), _oracle_apply(x, p, key, 5, scale))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_non_contiguous_uses_flat_c_order(backend, dtype, rng):
    key = _key(rng)
    base = rng.standard_normal((64, 130)).astype(dtype)
    for x in (base[:, ::2], base.T, base[::3, 1:-1], np.asfortranarray(base)):
        y = kernels.apply(x, 0.4, key, 9, kernels.keep_scale(0.4))
        assert y.flags.c_contiguous
        assert _same_bits(y, _oracle_apply(np.ascontiguousarray(x), 0.4, key, 9, kernels.keep_scale(0.4)))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_masks_match_reference_bitwise(backend, shape, rng):
    key = _key(rng)
    for p in P_VALUES:
        for counter in (0, 2**64 - 1):
            n = int(np.prod(shape, dtype=np.int64))
            m = kernels.keep_mask(shape, p, key, counter)
            assert m.dtype == bool and m.shape == shape
            assert np.array_equal(m, _reference.keep_mask(n, kernels.threshold(p), key, counter).reshape(shape))
            for dtype in (np.float32, np.float64):
                s = kernels.keep_scale(p)
                v = kernels.mask_values(shape, p, key, counter, s, dtype)
                assert _same_bits(v, _oracle_mask_values(shape, p, key, counter, s, dtype))


def test_out_argument(backend, rng):
    key, p = _key(rng), 0.3
    s = kernels.keep_scale(p)
    x = rng.standard_normal((50, 33)).astype(np.float32)
    expected = _oracle_apply(x, p, key, 4, s)
    out = np.full_like(x, np.nan)
    assert kernels.apply(x, p, key, 4, s, out=out) is out
    assert _same_bits(out, expected)
    inplace = x.copy()
    kernels.apply(inplace, p, key, 4, s, out=inplace)  # backward may reuse dy's buffer
    assert _same_bits(inplace, expected)


# --- determinism: threads, chunking, regeneration -------------------------------------------


def test_same_mask_for_any_thread_count_and_chunking(rng):
    import numba

    fast = _numba_module()
    key, t = _key(rng), kernels.threshold(0.35)
    x = rng.standard_normal(200_003).astype(np.float32)
    s, z = np.float32(kernels.keep_scale(0.35)), np.float32(0.0)
    expected = _oracle_apply(x, 0.35, key, 77, kernels.keep_scale(0.35))
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            for chunk in (8, 64, 1000, fast.CHUNK, 1 << 20):
                y = fast.apply(x, np.empty_like(x), t, s, z, key, 77, chunk=chunk)
                assert _same_bits(y, expected), (threads, chunk)
    finally:
        numba.set_num_threads(before)


def test_chunk_must_be_a_multiple_of_the_block(rng):
    fast = _numba_module()
    x = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="chunk must be a positive multiple of 4"):
        fast.apply(x, np.empty_like(x), 100, np.float32(1), np.float32(0), (1, 2), 0, chunk=10)


def test_backward_regenerates_the_forward_mask(backend, rng):
    key, p = _key(rng), 0.5
    s = kernels.keep_scale(p)
    shape = (300, 257)
    # Values bounded away from 0, so an output is 0 exactly when its element was dropped.
    x = rng.uniform(1, 2, shape) * rng.choice([-1, 1], shape)
    dy = rng.uniform(1, 2, shape) * rng.choice([-1, 1], shape)
    for counter in (0, 12345, 2**63):
        y = kernels.apply(x, p, key, counter, s)
        dx = kernels.apply(dy, p, key, counter, s)
        assert np.array_equal(y == 0, dx == 0)
        assert np.array_equal(y != 0, kernels.keep_mask(shape, p, key, counter))


def test_different_counters_and_keys_give_different_masks(rng):
    key = _key(rng)
    m = kernels.keep_mask(4096, 0.5, key, 0)
    assert not np.array_equal(m, kernels.keep_mask(4096, 0.5, key, 1))
    assert not np.array_equal(m, kernels.keep_mask(4096, 0.5, (key[0] ^ 1, key[1]), 0))


# --- exact invariants -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_invariants(backend, dtype, rng):
    key = _key(rng)
    x = rng.standard_normal((40, 51)).astype(dtype)
    x0 = x.copy()
    for p in (0.0, 0.2, 0.7, 1.0):
        s = kernels.keep_scale(p)
        y = kernels.apply(x, p, key, 3, s)
        assert y.dtype == x.dtype and y.shape == x.shape
        assert _same_bits(x, x0), "input mutated"
        kept = y != 0
        # every output is 0 or x * scale (computed in x's dtype)
        assert np.array_equal(y[kept], x[kept] * dtype(s))
        if p == 0.0:
            assert _same_bits(y, x)
        if p == 1.0:
            assert np.all(y == 0) and np.all(np.isfinite(y)) and s == 0.0


def test_threshold_edges_and_resolution(rng):
    R = kernels.RESOLUTION
    assert R == 2**32
    assert kernels.threshold(0.0) == 0 and kernels.threshold(1.0) == R
    assert kernels.threshold(2.0**-32) == 1 and kernels.threshold(1 - 2.0**-32) == R - 1
    assert kernels.threshold(2.0**-34) == 0  # below half a step: nothing dropped
    ps = np.concatenate([np.linspace(0, 1, 10_001), rng.uniform(0, 1, 10_000), [2.0**-32, 2.0**-20, 1e-6, 5e-6],
                         [1 - 2.0**-20, 1 - 2.0**-32]])
    for p in ps:
        pe = kernels.effective_p(p)
        t = kernels.threshold(p)
        assert 0 <= t <= R and pe == t / R
        assert abs(pe - p) <= 2.0**-33  # round to nearest of a 2**-32 grid (the contract: 2**-24)
        # the scale is 1/(1 - p) of p itself, in float64, not of the realised probability
        assert kernels.keep_scale(p) == (1.0 / (1.0 - p) if p < 1 else 0.0)
    assert kernels.keep_scale(1.0) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.4])
def test_kept_values_are_exactly_x_over_keep(backend, p, dtype, rng):
    # PyTorch's contract: s = 1/(1-p) computed in float64, rounded once to x's dtype, then one
    # rounding for the product. (At 16 bits, p = 0.4 gave x * 1.666650 instead of 1.666667.)
    key = _key(rng)
    x = rng.standard_normal((129, 257)).astype(dtype)
    y = kernels.apply(x, p, key, 5, kernels.keep_scale(p))
    kept = kernels.keep_mask(x.shape, p, key, 5)
    assert 0 < kept.sum() < x.size
    assert np.array_equal(y[kept], x[kept] * dtype(1 / (1 - p)))
    assert np.all(y[~kept] == 0)
    m = kernels.mask_values(x.shape, p, key, 5, kernels.keep_scale(p), dtype)
    assert set(np.unique(m).tolist()) == {0.0, float(dtype(1 / (1 - p)))}


def test_edges_drop_exactly_nothing_or_everything(backend, rng):
    key, counter = _key(rng), int(rng.integers(0, 2**63))
    n = 1 << 17
    assert kernels.keep_mask(n, 0.0, key, counter).all()
    assert not kernels.keep_mask(n, 1.0, key, counter).any()
    x = rng.standard_normal(n).astype(np.float32)
    with np.errstate(all="raise"):
        assert _same_bits(kernels.apply(x, 0.0, key, counter, kernels.keep_scale(0.0)), x)
        y = kernels.apply(x, 1.0, key, counter, kernels.keep_scale(1.0))
    assert np.all(y == 0)


def test_tiny_and_near_one_p_cut_the_32_bit_words_exactly(backend, rng):
    # An element is dropped exactly when its 32-bit word is < round(p * 2**32): with the
    # smallest word w of the call, p = w / 2**32 drops nothing and p = (w + 1) / 2**32 drops
    # exactly the elements holding w; the same at the top end with the largest word.
    key, counter = _key(rng), int(rng.integers(0, 2**63))
    n = 1 << 18
    w = _reference.words(n, key, counter)
    lo, hi = int(w.min()), int(w.max())
    assert kernels.keep_mask(n, lo / 2**32, key, counter).all()
    assert np.array_equal(kernels.keep_mask(n, (lo + 1) / 2**32, key, counter), w != lo)
    assert np.array_equal(kernels.keep_mask(n, hi / 2**32, key, counter), w == hi)
    assert not kernels.keep_mask(n, (hi + 1) / 2**32, key, counter).any()
    assert np.array_equal(kernels.keep_mask(n, 2.0**-32, key, counter), w != 0)


# --- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.9])
def test_drop_rate_within_five_sigma(p, rng):
    # n = 10**7 independent elements; |rate - p| <= 5 sqrt(p(1-p)/n), false failure ~5.7e-7
    # (the threshold's rounding, <= 2**-33, is under 1e-4 sigma here).
    n = 10**7
    rate = 1 - np.count_nonzero(kernels.keep_mask(n, p, _key(rng), int(rng.integers(0, 2**63)))) / n
    assert abs(rate - p) <= Z * math.sqrt(p * (1 - p) / n)


def test_small_p_rate_within_five_sigma(rng):
    # p = 2**-20 over n = 2**26 independent elements: 64 drops expected, sd 8. The bound
    # |rate - p| <= 5 sqrt(p(1-p)/n) fails by chance with probability ~5.7e-7 (z = 5); the
    # threshold is exact here (2**12). A 16-bit threshold rounded this p to 0 (rate 0: 8 sd off).
    n, p, calls = 1 << 26, 2.0**-20, 16  # 16 calls (own counters) of 2**22: light on the reference
    key, counter = _key(rng), int(rng.integers(0, 2**62))
    dropped = sum(n // calls - np.count_nonzero(kernels.keep_mask(n // calls, p, key, counter + c))
                  for c in range(calls))
    assert abs(dropped / n - p) <= Z * math.sqrt(p * (1 - p) / n)


@pytest.mark.slow
def test_rate_at_one_in_a_million_over_a_billion_draws(rng):
    # p = 1e-6 over n = 30 * 2**25 ~ 1.007e9 independent elements (30 calls, each its own
    # counter): 1007 drops expected, sd ~31.7. |rate - p| <= 5 sqrt(p(1-p)/n) fails by chance
    # with probability ~5.7e-7 (z = 5); the threshold's rounding (<= 2**-33 = 1.2e-10) is under
    # 0.4% of a sigma (3.2e-8).
    p, size, calls = 1e-6, 1 << 25, 30
    n = size * calls
    key, first = _key(rng), int(rng.integers(0, 2**62))
    dropped = sum(size - int(np.count_nonzero(kernels.keep_mask(size, p, key, first + c))) for c in range(calls))
    assert abs(dropped / n - p) <= Z * math.sqrt(p * (1 - p) / n)


def test_mean_is_preserved_within_five_sigma(rng):
    # y = x * m * s with x = 1, s = 1/(1-p): E[y] = s (1 - p_eff) = 1 up to 2**-33 / (1-p),
    # sd(y) = s * sqrt(p (1 - p)); n = 10**7 elements, z = 5 (false failure ~5.7e-7).
    n, p = 10**7, 0.3
    s = kernels.keep_scale(p)
    y = kernels.apply(np.ones(n), p, _key(rng), 11, s)
    assert abs(y.mean() - 1) <= Z * s * math.sqrt(p * (1 - p) / n)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a @ b) / math.sqrt((a @ a) * (b @ b)))


def test_no_correlation_between_neighbours_calls_or_keys(rng):
    # Under independence a sample correlation of n pairs is ~N(0, 1/n): |r| <= 5/sqrt(n) fails by
    # chance with probability ~5.7e-7 per check (12 checks here: ~7e-6 in all).
    n = 1 << 20
    key = _key(rng)
    counter = int(rng.integers(0, 2**63))
    bound = Z / math.sqrt(n)
    u = _reference.words(n + 8, key, counter).astype(np.float64)  # the kernels' words (bit identity above)
    m = kernels.keep_mask(n + 8, 0.3, key, counter)
    for lag in (1, 4, 5):  # across words of a block, the same word of the next block, across blocks
        assert abs(_corr(u[:n], u[lag : lag + n])) <= bound, lag
        assert abs(_corr(m[:n], m[lag : lag + n])) <= bound, lag
    for other_key, other_counter in [
        (key, counter + 1),  # consecutive calls
        ((key[0] ^ 1, key[1]), counter),  # keys one bit apart
        ((key[0], key[1] ^ (1 << 31)), counter),
    ]:
        u2 = _reference.words(n, other_key, other_counter).astype(np.float64)
        m2 = kernels.keep_mask(n, 0.3, other_key, other_counter)
        assert abs(_corr(u[:n], u2)) <= bound, (other_key, other_counter)
        assert abs(_corr(m[:n], m2)) <= bound, (other_key, other_counter)


# --- errors ---------------------------------------------------------------------------------


def test_bad_arguments_raise_the_project_message():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"droplab.kernels.apply: `p` must be a probability in \[0, 1\]; got p=1.5"):
        kernels.apply(x, 1.5, (1, 2), 0, 1.0)
    with pytest.raises(ValueError, match=r"`key` must be a pair of integers in \[0, 2\*\*32\)"):
        kernels.apply(x, 0.5, (1, 2**32), 0, 1.0)
    big = r"`counter` must be an integer in \[0, 2\*\*64\); got counter=18446744073709551616"
    with pytest.raises(ValueError, match=big):
        kernels.apply(x, 0.5, (1, 2), 2**64, 1.0)
    with pytest.raises(TypeError, match=r"`counter` must be an integer"):
        kernels.apply(x, 0.5, (1, 2), 1.0, 1.0)
    with pytest.raises(TypeError, match=r"`x` must be float32 or float64; got x='int64'"):
        kernels.apply(np.ones(4, np.int64), 0.5, (1, 2), 0, 1.0)
    with pytest.raises(TypeError, match=r"`out` must be an ndarray of dtype float32"):
        kernels.apply(x, 0.5, (1, 2), 0, 1.0, out=np.ones(4))
    with pytest.raises(ValueError, match=r"`out` must be a writeable C-contiguous array of shape \(4,\)"):
        kernels.apply(x, 0.5, (1, 2), 0, 1.0, out=np.ones(5, np.float32))
    with pytest.raises(TypeError, match=r"mask_values: `dtype` must be float32 or float64; got dtype='float16'"):
        kernels.mask_values((3,), 0.5, (1, 2), 0, 1.0, np.float16)
    with pytest.raises(ValueError, match=r"keep_mask: `shape` must be a tuple of non-negative integers"):
        kernels.keep_mask((3, -1), 0.5, (1, 2), 0)
    with pytest.raises(TypeError, match=r"keep_mask: `shape` must be a tuple of non-negative integers"):
        kernels.keep_mask(None, 0.5, (1, 2), 0)


def test_bad_backend_name_in_environment(monkeypatch):
    monkeypatch.setattr(kernels, "_backend_name", None)
    monkeypatch.setenv("DROPLAB_KERNELS", "numbaa")
    expected = r"`DROPLAB_KERNELS` must be one of 'auto', 'numba', 'numpy'.*Did you mean 'numba'"
    with pytest.raises(ValueError, match=expected):
        kernels.backend()


# --- backend choice and lazy import (fresh interpreters) ------------------------------------


def _python(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("DROPLAB_KERNELS", "NUMBA_THREADING_LAYER")}
    full.update(env)
    r = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_does_not_import_numba():
    code = (
        "import sys, droplab, droplab.kernels\n"
        "from droplab import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('numba' in sys.modules)"
    )
    assert _python(code).splitlines()[-1] == "False"


def test_environment_selects_the_backend_and_default_pool():
    code = (
        "import sys, numpy as np\nfrom droplab import kernels\n"
        "kernels.apply(np.ones(10**5, np.float32), 0.5, (1, 2), 0, 2.0)\n"
        "print(kernels.backend(), 'numba' in sys.modules, end=' ')\n"
        "print(sys.modules['numba'].threading_layer() if 'numba' in sys.modules else '-')"
    )
    assert _python(code, DROPLAB_KERNELS="numpy") == "numpy False -"
    _numba_module()
    # workqueue: the pool chosen for coexistence with OpenBLAS (see kernels._configure_threads)
    assert _python(code) == "numba True workqueue"


def test_default_threading_layer_when_numba_was_imported_first():
    _numba_module()
    code = (
        "import numba, numpy as np\nfrom droplab import kernels\n"
        "kernels.apply(np.ones(10**5, np.float32), 0.5, (1, 2), 0, 2.0)\n"
        "print(numba.threading_layer())"
    )
    assert _python(code) == "workqueue"
    assert _python(code, NUMBA_THREADING_LAYER="omp") == "omp"  # the user's choice wins


def test_concurrent_calls_from_python_threads(rng):
    # The workqueue pool aborts the process on concurrent launches unless they are serialised.
    from concurrent.futures import ThreadPoolExecutor

    key = _key(rng)
    x = rng.standard_normal(300_001).astype(np.float32)
    expected = [_oracle_apply(x, 0.5, key, c, 2.0) for c in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: kernels.apply(x, 0.5, key, c, 2.0), range(8)))
    assert all(_same_bits(g, e) for g, e in zip(got, expected))


# --- recycled output memory --------------------------------------------------------------------


@pytest.fixture
def small_pool(monkeypatch):
    """The output pool with a 64 KiB threshold, so tests stay small; emptied before and after."""
    from droplab.kernels import _pool

    monkeypatch.setattr(_pool, "MIN_BYTES", 1 << 16)
    monkeypatch.setattr(_pool, "MAX_FREE_BYTES", 1 << 20)
    kernels.release_memory()
    yield _pool
    kernels.release_memory()


def test_large_outputs_reuse_memory_only_once_unreachable(backend, small_pool, rng):
    x = rng.standard_normal(1 << 15).astype(np.float32)  # 128 KiB: pooled
    key = _key(rng)
    y = kernels.apply(x, 0.5, key, 0, 2.0)
    address = y.ctypes.data
    view = y[::3]
    del y
    z = kernels.apply(x, 0.5, key, 1, 2.0)  # the first buffer is still reachable through view
    assert z.ctypes.data != address
    assert np.array_equal(view, _oracle_apply(x, 0.5, key, 0, 2.0)[::3])
    del view
    if backend == "numba":  # the reference computes into fresh arrays, beside the pool
        assert small_pool.free_bytes() == x.nbytes
        w = kernels.apply(x, 0.5, key, 2, 2.0)
        assert w.ctypes.data == address and small_pool.free_bytes() == 0
        assert _same_bits(w, _oracle_apply(x, 0.5, key, 2, 2.0))
        assert _same_bits(z, _oracle_apply(x, 0.5, key, 1, 2.0))
        assert w.flags.c_contiguous and w.flags.writeable and w.dtype == np.float32


def test_small_outputs_are_plain_arrays(small_pool, rng):
    y = kernels.apply(np.ones(100, np.float32), 0.5, _key(rng), 0, 2.0)
    assert y.base is None
    del y
    assert small_pool.free_bytes() == 0


def test_pool_keeps_at_most_its_cap_and_releases_on_request(small_pool, rng):
    _numba_module()
    x = np.ones(1 << 15, np.float32)  # 128 KiB each; the cap is 1 MiB
    ys = [kernels.apply(x, 0.5, _key(rng), i, 2.0) for i in range(12)]
    del ys
    assert small_pool.free_bytes() == small_pool.MAX_FREE_BYTES
    assert kernels.release_memory() == small_pool.MAX_FREE_BYTES
    assert small_pool.free_bytes() == 0


def test_masks_and_dtypes_from_the_pool(small_pool, rng):
    _numba_module()
    key = _key(rng)
    shape = (64, 1024)
    for _ in range(2):  # the second round reuses the first round's buffers
        m = kernels.keep_mask(shape, 0.3, key, 5)
        assert m.dtype == bool and m.shape == shape
        assert np.array_equal(m, _reference.keep_mask(m.size, kernels.threshold(0.3), key, 5).reshape(shape))
        v = kernels.mask_values(shape, 0.3, key, 5, 1.5, np.float64)
        assert v.dtype == np.float64 and _same_bits(v, _oracle_mask_values(shape, 0.3, key, 5, 1.5, np.float64))
        del m, v


# -- repeats: the mask of a stacked copy without the copy (Monte Carlo dropout) --------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, reps", [((3, 5), 2), ((7,), 3), ((1, 1), 50), ((17, 33), 7),
                                         ((40, 256), 100), ((301, 257), 3), ((5, 2, 3), 4)])
def test_apply_repeats_is_apply_on_the_stacked_copy(dtype, shape, reps, rng):
    """Every size, including stacks past the parallel threshold and rows that are not a
    whole number of Philox blocks (the segments cross block and copy boundaries)."""
    key = _key(rng)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = -0.0
    for p in (0.0, 0.3, 1.0):
        counter = int(rng.integers(0, 2**64, dtype=np.uint64))
        scale = 1.0 / (1.0 - p) if p < 1 else 1.0
        want = kernels.apply(np.concatenate([x] * reps), p, key, counter, scale)
        got = kernels.apply(x, p, key, counter, scale, repeats=reps)
        assert _same_bits(got, want)
        out = np.empty(want.shape, dtype)
        assert kernels.apply(x, p, key, counter, scale, out=out, repeats=reps) is out and _same_bits(out, want)
        assert _same_bits(_reference.apply(np.concatenate([x] * reps), kernels.threshold(p), scale, key, counter), want)


def test_apply_repeats_refuses_bad_values():
    x = np.ones((2, 3), np.float32)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"kernels\.apply: `repeats` must be an integer >= 1"):
            kernels.apply(x, 0.5, (1, 2), 0, 2.0, repeats=bad)
    with pytest.raises(ValueError, match="shape \\(6, 3\\)"):
        kernels.apply(x, 0.5, (1, 2), 0, 2.0, out=np.empty((2, 3), np.float32), repeats=3)
    with pytest.raises(ValueError, match="at least one axis"):
        kernels.apply(np.float32(1.0), 0.5, (1, 2), 0, 2.0, repeats=2)
