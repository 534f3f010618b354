"""MC dropout: predictive uncertainty from T stochastic forward passes, batched.

Gal and Ghahramani (2016) showed that keeping dropout on at test time and averaging ``T``
stochastic passes approximates Bayesian model averaging; the spread of the passes says how
unsure the network is. :func:`mc_predict` does it in one call:

* only the dropout-family layers (``module.is_dropout``) sample; every other layer
  (BatchNorm above all) stays in eval mode, and ``model.train()`` is never called, so
  BatchNorm's running statistics are untouched (the bug of keras #9412 / tf-keras #81);
* the ``T`` passes run as ONE stacked forward: the inputs are tiled ``T`` times along the
  batch axis, so each copy of an input row meets its own mask (a mask element is a function
  of its index), instead of a Python loop of ``T`` model calls. Large problems are cut into
  chunks under a memory budget (:data:`MEMORY_BUDGET`), and the chunks run on one thread per
  core with the masks of the loop over them (``_in_threads``);
* the layers of a :class:`~droplab.nn.Sequential` before its first dropout layer are
  deterministic in this mode, so they run once per input, not ``T`` times;
* the modes of every layer are restored afterwards, even when the forward raises.

Reference:
    Gal and Ghahramani, "Dropout as a Bayesian Approximation: Representing Model
    Uncertainty in Deep Learning", ICML 2016 (MC dropout, the 1/tau term of the predictive
    variance). Gal, "Uncertainty in Deep Learning", PhD thesis, 2016, section 3.3 (predictive
    entropy, mutual information / BALD, variation ratio).
"""

from __future__ import annotations

import copy
import itertools
import threading

import numpy as np

from droplab import _rng, _validate
from droplab.errors import InvalidTypeError, InvalidValueError
from droplab.mc import MAX_SAMPLES, MCResult, Stats, check_samples, deterministic, outputs, result
from droplab.nn.dropout import Dropout, variant
from droplab.nn.losses import Loss
from droplab.nn.module import Module, Sequential
from droplab.nn.train import _forward_eval, _pad_heap

__all__ = ["MCResult", "mc_predict", "MEMORY_BUDGET", "SAMPLES_BUDGET", "MAX_SAMPLES", "THREAD_MIN_BYTES"]

#: Bytes the widest activation of one stacked forward may take (4 MiB). The number of
#: inputs per chunk is chosen so that ``T * inputs * widest_row_bytes`` stays under it
#: (with at least one input per chunk; ``T`` itself is split when one input is too much).
#: Small on purpose: chunks whose arrays stay in cache ran fastest on the project's 2-core
#: machine (4-8 MiB best; 64 MiB chunks were about 2x slower, memory-bound elementwise passes
#: over arrays that left the cache), and a chunk of 4 MiB is already a large matrix product.
MEMORY_BUDGET = 4 * 2**20

#: Bytes of per-pass outputs (``T * N * K`` float64) that ``keep_samples=None`` (the default)
#: keeps in the result (64 MiB). Above it the statistics are streamed chunk by chunk and
#: ``samples`` is None, so 100,000 inputs x T = 1000 never holds gigabytes; ask for the passes
#: with ``keep_samples=True``.
SAMPLES_BUDGET = 64 * 2**20



# --- which layers sample, and can they be stacked? ---------------------------------------


def _batch_independent(layer: Module) -> bool:
    """True when ``layer`` draws independent noise for every row of its batch.

    Only then does tiling the inputs ``T`` times give ``T`` independent passes. The answer is
    the variant's spec's (:meth:`droplab.family.Spec.rows_independent`); a layer with its own
    forward outside the family's classes is run pass by pass instead.
    """
    return (isinstance(layer, Dropout) and type(layer).forward is variant(layer.spec).forward
            and layer.rows_independent)


def _identity_when_sampling(layer: Module) -> bool:
    """True when ``layer`` would sample nothing: a base-mechanism dropout layer at ``p = 0``.

    Its training forward is then the identity (no counter moves), the same as its eval forward.
    """
    return (isinstance(layer, Dropout) and type(layer).forward is Dropout.forward
            and float(layer.p) == 0.0)


def _snapshot(layer: Module) -> dict:
    """The layer's attributes, copying the random state a forward could advance in place."""
    return {k: copy.deepcopy(v) if isinstance(v, (np.random.Generator, np.random.BitGenerator)) else v
            for k, v in vars(layer).items()}


def _restore(layer: Module, saved: dict) -> None:
    vars(layer).clear()
    vars(layer).update(saved)


def _reseed_masks(layer: Module, ss: np.random.SeedSequence) -> None:
    """Give ``layer`` a temporary noise stream from ``ss`` without touching its weights."""
    if isinstance(layer, Dropout):  # a new stream object: the layer's own one is left untouched
        layer.rng = _rng.NoiseStream.from_seed(ss)
        return
    params = [(p, p.value.copy()) for p in layer._parameters()]
    layer._reseed(ss)
    for p, value in params:  # a layer with weights must keep them
        p.value = value


# --- the statistics, accumulated chunk by chunk ------------------------------------------


# --- the forward passes -------------------------------------------------------------------


def _split_prefix(model: Module) -> tuple[list[Module], Module | list[Module]]:
    """``(deterministic prefix, rest)``: a Sequential's layers before its first sampling one.

    Both halves are returned as Sequentials so each runs its fused blocks (Dense -> ReLU ->
    Dropout in one pass) as ``model.forward`` would."""
    if isinstance(model, Sequential):
        layers = list(model.layers)
        for i, layer in enumerate(layers):
            if any(m.is_dropout for m in layer.modules()):
                return Sequential(*layers[:i]), Sequential(*layers[i:])
        return Sequential(*layers), Sequential()
    return [], model


def _stacked_head(rest) -> tuple[Dropout | None, Module | list]:
    """``(dropout, after)`` when ``rest`` opens with a plain element-wise Bernoulli dropout
    layer, which can draw its mask on the stacked positions of ``T`` passes without the
    stacked copy (:func:`_stacked_dropout`); else ``(None, rest)``."""
    if not isinstance(rest, Sequential) or not rest.layers:
        return None, rest
    first = rest.layers[0]
    plain = (isinstance(first, Dropout) and type(first).forward is Dropout.forward and "forward" not in vars(first)
             and first.spec.bernoulli and first.training and first.p != 0)
    return (first, Sequential(*rest.layers[1:])) if plain else (None, rest)


def _stacked_dropout(layer: Dropout, h: np.ndarray, reps: int) -> np.ndarray | None:
    """``layer.forward(np.concatenate([h] * reps))`` bit for bit (the same draw, the same
    state left behind), with the mask drawn on the stacked positions of ``h`` read ``reps``
    times: no stacked copy. None where the layer's noise is not element-wise at that shape
    or ``h`` is not float32/float64 (the caller then stacks)."""
    shape = (h.shape[0] * reps,) + h.shape[1:]
    if h.dtype not in (np.float32, np.float64) or layer.noise_shape(shape) != shape:
        return None
    draw = layer.rng.next()
    layer._state = ("train", draw, shape, shape)
    return draw.apply(h, layer.p, layer.scale, repeats=reps)


def _chunk(layers, xb: np.ndarray, T: int, t_chunk: int, loss: Loss | None, classification: bool,
           keep_samples: bool) -> dict:
    """The ``T`` passes over the inputs ``xb`` through ``layers`` (``(prefix, rest, head,
    after)``): ``{"stats": Stats, "samples": (T, n, K) | None}``. The prefix runs once; the
    passes run ``t_chunk`` at a time, stacked along the batch axis."""
    prefix, rest, head, after = layers
    nb = xb.shape[0]
    h = _run(prefix, xb)
    stats = None
    chunk_samples = []
    for t0 in range(0, T, t_chunk):
        tc = min(t_chunk, T - t0)
        hh = _stacked_dropout(head, h, tc) if head is not None and tc > 1 else None
        if hh is not None:
            out = _run(after, hh)
        else:
            out = _run(rest, np.concatenate([h] * tc) if tc > 1 else h)
        out = np.asarray(loss.output(out) if loss is not None else out)
        out = outputs(out, tc, nb, classification)  # a sigmoid output: two classes
        if stats is None:
            stats = Stats(nb, out.shape[-1], classification)
        stats.add(out)
        if keep_samples:
            chunk_samples.append(out)
    return {"stats": stats, "samples": np.concatenate(chunk_samples) if keep_samples else None}


# --- the chunks on one thread per core ----------------------------------------------------


#: The least bytes a chunk's widest activation must take for the chunks to run on threads:
#: below it the threads only take turns holding the GIL. Measured on the 2-core machine
#: (the default MLP, threads against the loop): 10-160 KiB chunks 0.58-0.77x, 200 KiB
#: 0.99x, 500 KiB 1.47x, 1 MiB 1.76x.
THREAD_MIN_BYTES = 256 << 10

# One mc_predict at a time spreads its chunks over the cores: each already uses every core,
# and BLAS's one-thread setting (train._one_blas_thread) belongs to the thread that set it.
_SPREAD = threading.Lock()


def _streams(droppers: list[Module]) -> list[_rng.NoiseStream] | None:
    """The distinct noise streams the sampling layers draw from, or None when one of them
    also holds a NumPy generator, whose position a thread could not set."""
    found: dict[int, _rng.NoiseStream] = {}
    for m in droppers:
        for v in vars(m).values():
            if isinstance(v, (np.random.Generator, np.random.BitGenerator, np.random.RandomState)):
                return None
            if isinstance(v, _rng.NoiseStream):
                found.setdefault(id(v), v)
    return list(found.values()) or None


def _library_layers(layers: tuple) -> bool:
    """True when every module of ``layers`` is one of droplab's own classes, running its class's
    forward: only then is all their randomness in the noise streams :func:`_streams` finds,
    and a copy of them reaches nothing of the original's. A user's layer may draw from a
    generator of its own or from NumPy's global one, or call the original through a closure;
    then the chunks run in order."""
    return all(type(m).__module__.split(".")[0] == "droplab" and "forward" not in vars(m)
               for m in _modules(layers))


def _copy(layers: tuple) -> tuple:
    """A copy of ``layers`` for one thread, sharing every array a module holds (Parameters,
    BatchNorm statistics, frozen weights): no forward of droplab's layers writes into them in
    these modes, and the copy then costs kilobytes, not the model's size."""
    memo: dict = {}
    for m in _modules(layers):
        for p in m._parameters():
            memo[id(p)] = p
        for v in vars(m).values():
            if isinstance(v, np.ndarray):
                memo[id(v)] = v
    return copy.deepcopy(layers, memo), memo


def _in_threads(layers: tuple, droppers: list[Module], chunk, n_chunks: int, chunk_bytes: int) -> list[dict]:
    """``[chunk(layers, i) for i in range(n_chunks)]``, the chunks spread over one Python
    thread per usable core, with the same bits as that loop whatever the number of threads.

    Threads: :func:`_thread_count`. Each chunk is one core's work: one BLAS thread
    (``train._one_blas_thread``, held by the calling thread for the whole call, so BLAS runs
    one thread in the whole process meanwhile, as during ``fit``) and droplab's kernels on the
    calling thread (:func:`droplab.kernels.on_this_thread`, without the GIL). Spread this
    way, the 2-core machine ran T = 100 passes on 10,000 inputs in about 1.1 s against 1.6 s
    for the chunks one after the other on both cores' BLAS and kernel pools: after each
    product, OpenBLAS's idle threads spin for about 0.1 s and take the core the mask kernels
    need, and the kernels' pool returns the favour to the next product. With one thread, the
    chunks run in order under the same settings (the same bits, no copies).

    The masks do not depend on the thread: every chunk runs on a thread's copy of the layers
    (:func:`_copy`, made before any chunk runs), its streams set to where that chunk starts in
    the loop (chunk 0 shows how far each stream moves per chunk), and the streams of
    ``layers`` are then left where the loop leaves them. One chunk per thread is in flight, so
    the memory of the chunks grows with the number of threads. NumPy's floating-point error
    settings (``np.errstate``) of the calling thread apply in every thread.

    The chunks run in order on ``layers``, with BLAS's own thread count, when a module is not
    one of droplab's (:func:`_library_layers`), a stream cannot be positioned, there is one
    chunk or the chunks are small (:data:`THREAD_MIN_BYTES`), or the copy fails. They run in
    order on ``layers`` under the threads' settings when a copy's streams end elsewhere than
    predicted (a layer drawing a data-dependent number of masks) or a chunk raises: the loop
    then raises the error of the first failing chunk and leaves the streams where it stops.
    """
    from droplab import kernels
    from droplab.nn.train import _one_blas_thread

    streams = None
    if n_chunks > 1 and chunk_bytes >= THREAD_MIN_BYTES and _library_layers(layers):
        streams = _streams(droppers)
    if streams is None:
        return [chunk(layers, i) for i in range(n_chunks)]
    workers = min(_thread_count(), n_chunks)
    err = dict(np.geterr(), call=np.geterrcall())

    def in_order() -> list[dict]:  # the loop on layers, from their streams' starting point
        for s, b in zip(streams, base):
            s.seek(b)
        return [chunk(layers, i) for i in range(n_chunks)]

    base = [s.counter for s in streams]
    with _SPREAD, _one_blas_thread(), kernels.on_this_thread():
        if workers == 1:
            return in_order()
        try:
            copies = [_copy(layers) for _ in range(workers)]
            copies = [(mine, [memo[id(s)] for s in streams]) for mine, memo in copies]
        except Exception:  # noqa: BLE001 - a layer that cannot be copied
            return in_order()
        parts: list = [None] * n_chunks
        parts[0] = chunk(copies[0][0], 0)
        step = [s.counter - b for s, b in zip(copies[0][1], base)]
        nxt = itertools.count(1).__next__
        errors: list[BaseException] = []
        off_course: list[int] = []  # with errors: hand out no more chunks

        def work(k: int) -> None:
            mine, mine_streams = copies[k]
            try:
                with kernels.on_this_thread(), np.errstate(**err):
                    while not (errors or off_course):
                        i = nxt()
                        if i >= n_chunks:
                            return
                        for s, b, d in zip(mine_streams, base, step):
                            s.seek(b + i * d)
                        parts[i] = chunk(mine, i)
                        if any(s.counter != b + (i + 1) * d for s, b, d in zip(mine_streams, base, step)):
                            off_course.append(i)
            except BaseException as e:  # noqa: BLE001 - handled by the calling thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,), name=f"droplab-mc-{k}", daemon=True)
                   for k in range(1, workers)]
        for t in threads:
            t.start()
        work(0)  # returns once every chunk is handed out or one went wrong
        for t in threads:
            t.join()
        for e in errors:
            if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: at once
                raise e
        if errors or off_course:
            return in_order()
        for s, b, d in zip(streams, base, step):
            s.seek(b + n_chunks * d)
        return parts


def _thread_count() -> int:
    """Threads for the chunks: the usable cores, or fewer when the caller gave droplab's
    kernels fewer threads (``numba.set_num_threads``; the lab's workers run one each)."""
    import numba

    from droplab import _validate

    return max(1, min(_validate.usable_cores(), numba.get_num_threads()))


def _modules(layers: tuple):
    """The distinct modules of ``(prefix, rest, head, after)``."""
    seen = set()
    for part in layers:
        for m in ([part] if isinstance(part, Module) else part or ()):
            for sub in m.modules():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub


def _run(layers, x: np.ndarray) -> np.ndarray:
    if isinstance(layers, Module):
        return layers.forward(x)
    for layer in layers:
        x = layer.forward(x)
    return x


def _probe(model: Module, x1: np.ndarray) -> tuple[int, int]:
    """``(widest_row_bytes, outputs_per_row)`` from a one-row probe: the bytes per input row
    of the widest array a forward makes, and the number of raw outputs per row.

    The probe runs in eval mode (no mask is drawn, no counter moves, BatchNorm statistics
    are not updated) with every module's forward wrapped to record its output's size.
    """
    widest = [x1.nbytes]
    mods = list(model.modules())

    def wrap(m):
        cls_forward = type(m).forward

        def forward(x):
            y = cls_forward(m, x)
            widest.append(int(np.asarray(y).nbytes))
            return y
        return forward

    for m in mods:
        m.forward = wrap(m)
    try:
        out = np.asarray(model.forward(x1))
    finally:
        for m in mods:
            vars(m).pop("forward", None)
    return max(widest), int(np.prod(out.shape[1:], dtype=np.int64))


def mc_predict(model: Module, X, samples: int = 50, seed: _rng.Seed = None, batch_size: int | None = None,
               keep_samples: bool | None = None, tau: float | None = None, *,
               loss: Loss | None = None) -> MCResult:
    """MC dropout prediction: ``samples`` stochastic passes with only dropout layers sampling.

    ``p`` of the model's dropout layers is the probability that a unit is zeroed (not the
    keep probability); each pass is a training-mode forward of those layers (``x * m / (1 -
    p)`` for inverted dropout), while every other layer, BatchNorm included, runs in eval
    mode. ``model.train()`` is never called, and each module's ``training`` flag is restored
    afterwards, even on error.

    The passes are batched: the inputs are tiled ``samples`` times along the batch axis and
    run as one forward (a single large matrix product per layer instead of ``T`` small
    ones). A chunk holds at most :data:`MEMORY_BUDGET` bytes in its widest activation,
    measured by a one-row probe, or ``batch_size`` inputs (times ``T`` rows) when given. The
    layers of a Sequential before its first dropout layer run once per input. A dropout
    layer whose noise is shared across the batch axis makes the passes run one by one. The
    chunks run on one thread per usable core, each chunk with one BLAS thread, and the
    result does not depend on the number of threads (see Randomness).

    Exactness: when no layer samples (every dropout layer at ``p = 0``), mc_predict runs the
    deterministic pass itself, with the same call as ``model.predict(X)``, so ``mean`` equals
    ``model.predict(X)`` bit for bit on every CPU and ``std``, ``mutual_information`` and
    ``variation_ratio`` are exactly 0. With sampling layers, a pass's rows meet the matrix
    products (BLAS) in other shapes than ``predict``'s (stacked, chunked), and BLAS may round
    a product differently for another shape: the same seed, inputs, ``samples`` and chunking
    give the same bits on one machine, whatever the number of cores or threads. Another
    chunking (``batch_size``) draws other masks, since a mask element is a function of its
    index in the stacked forward: another, equally valid, sample of the passes.

    Randomness: with ``seed`` (int | Generator), the dropout layers draw from temporary mask
    streams derived from it, and their keys and counters are restored afterwards, so the
    model's own mask stream (and a later ``fit``) is untouched; the same seed, model, inputs,
    ``samples`` and chunking give bit-identical results, whatever the number of threads
    (chunk ``i`` draws the masks it would draw in a loop over the chunks). With ``seed=None``
    the layers' own streams are used and advanced, as training forwards would, so a model
    built with ``Sequential(seed=s)`` gives reproducible MC predictions too.

    Args:
        model (Module): the network (trained or not).
        X: inputs ``(N, ...)``, finite.
        samples (int): number of passes ``T``, 1 to :data:`MAX_SAMPLES`. Default 50.
        seed (int | np.random.Generator | None): see Randomness. Default None.
        batch_size (int | None): inputs per stacked forward (each chunk runs ``T`` times as
            many rows); None (default) picks it from the memory budget.
        keep_samples (bool | None): keep the ``(T, N, K)`` passes in the result (True), or
            stream the statistics without them (False; the statistics are the same). None
            (default) keeps them when they take at most :data:`SAMPLES_BUDGET` bytes.
        tau (float | None): model precision for regression; adds ``1 / tau`` to the
            predictive variance. Default None (no term). Ignored for classification.
        loss (Loss | None): whose ``output`` turns raw outputs into predictions; default
            the loss the model was fit with (softmax probabilities for
            ``SoftmaxCrossEntropy``), raw outputs (regression) when it was never fit.

    Returns:
        An :class:`MCResult`.

    Shape:
        X ``(N, *)``; samples ``(T, N, K)``; mean, std, variance ``(N, K)``; entropy,
        mutual_information, variation_ratio ``(N,)``.

    Raises:
        TypeError: ``model`` not a Module, ``loss`` not a Loss, non-integer ``samples`` /
            ``batch_size``, non-numeric ``X``.
        ValueError: ``samples`` or ``batch_size`` < 1, ``samples`` > :data:`MAX_SAMPLES`,
            ``tau`` <= 0, ``X`` empty or not finite, a model with no dropout layer.

    Example:
        >>> import numpy as np
        >>> from droplab import nn
        >>> model = nn.Sequential(nn.Dense(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Dense(32, 3), seed=0)
        >>> model._loss = nn.SoftmaxCrossEntropy()  # as after model.fit(..., loss=...)
        >>> X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
        >>> r = nn.mc_predict(model, X, samples=20, seed=1)
        >>> r.samples.shape, r.mean.shape, r.entropy.shape, r.kind
        ((20, 10, 3), (10, 3), (10,), 'classification')
        >>> bool(np.all((0 <= r.mutual_information) & (r.mutual_information <= r.entropy)))
        True
        >>> model.training  # modes restored
        True

    Reference:
        Gal and Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.
    """
    where = "mc_predict"
    if not isinstance(model, Module):
        raise InvalidTypeError(_validate.message(where, "model", "a droplab Module", type(model).__name__))
    T = check_samples(where, samples, keep_samples)
    if batch_size is not None:
        batch_size = _validate.positive_int(where, "batch_size", batch_size)
    if tau is not None:
        tau = _validate.positive_float(where, "tau", tau)
    _rng.check_seed(where, seed)
    if loss is None:
        loss = getattr(model, "_loss", None)
    elif not isinstance(loss, Loss):
        raise InvalidTypeError(_validate.message(where, "loss", "a droplab loss (e.g. nn.SoftmaxCrossEntropy())", loss))
    X = _validate.finite_array(where, "X", X)
    mods = list(model.modules())
    droppers = [m for m in mods if m.is_dropout]
    if not droppers:
        raise InvalidValueError(_validate.message(
            where, "model", "a network with at least one dropout-family layer", type(model).__name__,
            "Without dropout every pass is the same; use model.predict(X)."))
    stacked = all(_batch_independent(m) for m in droppers)
    if all(_identity_when_sampling(m) for m in droppers):
        return _deterministic(model, X, T, loss, keep_samples, tau)

    _pad_heap()
    was = [m.training for m in mods]
    saved = [_snapshot(m) for m in droppers] if seed is not None else []
    try:
        for m in mods:
            m.training = False
        n = X.shape[0]
        row_bytes, k_raw = _probe(model, X[:1])
        if batch_size is not None:
            per_chunk, t_chunk = batch_size, T
        elif T * row_bytes <= MEMORY_BUDGET:
            per_chunk, t_chunk = MEMORY_BUDGET // (T * row_bytes), T
        else:  # one input's T copies exceed the budget: split the passes too
            per_chunk, t_chunk = 1, max(1, MEMORY_BUDGET // row_bytes)
        if not stacked:
            t_chunk = 1
        if keep_samples is None:
            k = 2 if k_raw == 1 and loss is not None and loss.classification else k_raw
            keep_samples = T * n * k * 8 <= SAMPLES_BUDGET
        if seed is not None:
            kids = _rng.seed_sequence(seed, where).spawn(len(droppers))
            for m, ss in zip(droppers, kids):
                _reseed_masks(m, ss)
        for m in droppers:
            m.training = True
        prefix, rest = _split_prefix(model)
        head, after = _stacked_head(rest)
        classification = bool(loss is not None and loss.classification)
        layers = (prefix, rest, head, after)
        starts = range(0, n, per_chunk)

        def chunk(parts_of, i):
            return _chunk(parts_of, X[starts[i]:starts[i] + per_chunk], T, t_chunk, loss, classification,
                          keep_samples)

        parts = _in_threads(layers, droppers, chunk, len(starts), t_chunk * min(per_chunk, n) * row_bytes)
    finally:
        for m, t in zip(mods, was):
            m.training = t
        for m, state in zip(droppers, saved):
            _restore(m, state)

    return result(parts, T, classification, tau, keep_samples, stacked)


def _deterministic(model: Module, X: np.ndarray, T: int, loss: Loss | None, keep_samples: bool | None,
                   tau: float | None) -> MCResult:
    """The result when no layer samples: ``T`` equal passes, each exactly ``predict(X)``.

    The pass runs as ``model.predict`` runs it (one eval-mode forward over ``X``), so its bits
    do not depend on how BLAS rounds other call shapes.
    """
    out = _forward_eval(model, X, None)
    out = np.asarray(loss.output(out) if loss is not None else out)
    classification = bool(loss is not None and loss.classification)
    return deterministic(outputs(out, 1, X.shape[0], classification)[0], T, classification, keep_samples, tau,
                         SAMPLES_BUDGET)
