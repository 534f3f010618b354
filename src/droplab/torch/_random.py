"""Where a ``droplab.torch`` module's randomness comes from: PyTorch's rules, in one place.

1. **Unseeded** (``seed=None``, the default): the module draws a fresh Philox key and counter
   (four 32-bit words) from torch's default generator of the input's device, or from the
   ``generator=`` it was given, at each training forward, never at construction. So
   ``torch.manual_seed(s)`` makes a run reproducible exactly as it does for
   ``torch.nn.Dropout``, and swapping droplab in leaves every other layer's initialisation
   unchanged (construction draws nothing). Evaluation and ``p = 0`` draw nothing.
2. **Seeded** (``seed=s``): the module owns a :class:`droplab._rng.NoiseStream` (key, counter)
   made from ``s`` exactly as the NumPy engine's layer of the same seed (the same masks, to
   the bit); each training forward takes the stream's next call; torch's generator is never
   touched.
3. **Clones and replicas never repeat each other's masks.** A seeded module's
   ``copy.deepcopy`` (and so ``nn.TransformerEncoder``'s layer clones) gets a stream of its own
   (:func:`clone_stream`): its key derived from the original's key and counter and the number
   of clones the original has made, so clones differ from the original and from each other,
   the same program makes the same clones, and the original's key and counter never move (a
   best-model, EMA or SWA snapshot leaves the training run bit-identical, as
   ``copy.deepcopy`` of a ``torch.nn`` model leaves its generators). The replicas
   ``nn.DataParallel`` makes at each step (``nn.parallel.replicate``) draw instead, the
   original never running itself: each takes a :meth:`~droplab._rng.NoiseStream.child` stream,
   a call of the original's stream, so its state says everything and a resumed run makes the
   same replicas. Unseeded clones and replicas draw from the generator in turn; unseeded
   replicas on several GPUs draw from each device's generator, as ``torch.nn.Dropout`` does
   (``torch.manual_seed`` seeds every device alike). A ``generator=`` is shared by clones,
   never copied.
4. **Distributed ranks never repeat each other's masks.** Under ``torch.distributed``, rank
   ``r`` draws call ``c`` as counter ``c + r * 2**48`` of the same key (lane ``r``). With
   ``seed=s`` give every rank the SAME ``s``: rank 0 draws what a single process draws, the
   other ranks draw their own masks, and the run is reproducible for a given seed and world
   size. Unseeded modules are folded the same way, so ranks seeded alike by
   ``torch.manual_seed`` (the usual way to get identical initial weights) still drop
   different units. To make ranks repeat each other's masks (asked for), set
   ``module.rank_lanes = False``.
5. **Reproducible to the bit, and resumable.** A module's random state is not in its
   ``state_dict`` (whose keys are exactly those of the model with ``torch.nn.Dropout``, so
   plain PyTorch checkpoints load strictly both ways); :func:`get_rng_state` /
   :func:`set_rng_state` carry it (every seeded stream, and the state of every generator an
   unseeded module draws from: torch's default CPU generator and, when CUDA is in use, every
   CUDA device's), and :func:`droplab.torch.checkpoint` uses them.
6. **Captured graphs draw a fresh mask per execution.** Under ``torch.export`` and
   ``torch.jit.trace`` an unseeded module's key is a graph op (``aten.randint``) feeding the
   pure-torch Philox (the same bits as the kernels), so every execution of the graph draws
   anew. A seeded module's stream is Python state that a graph cannot advance: capturing
   one in training mode raises an error naming the layer (use an unseeded module, or
   evaluation mode). ``torch.compile`` runs droplab modules eagerly (a graph break), so
   both kinds draw anew at each call. ``torch.jit.script`` is refused with one error
   naming ``torch.compile``.
7. **Activation checkpointing recomputes unseeded modules exactly.**
   ``torch.utils.checkpoint`` (both modes) runs the forward again during backward with torch's
   default generators restored, so an unseeded module draws the forward's key again. A seeded
   module's stream, or a ``generator=``, has moved on by then: rather than a gradient through
   another mask, its forward during a backward raises an error naming the layer and the fix
   (:func:`check_not_recomputing`). A checkpointed function that never recomputes the dropout
   (nothing after it saves its output) is unaffected.
"""

from __future__ import annotations

import numpy as np
import torch

from droplab.errors import InvalidTypeError, InvalidValueError
from droplab import _rng, _validate

__all__ = ["rank", "capturing", "plain", "check_not_recomputing", "fresh_draw", "TensorDraw", "clone_stream",
           "SharedGenerator", "get_rng_state", "set_rng_state"]

_M32 = 0xFFFFFFFF


def rank() -> int:
    """This process's ``torch.distributed`` rank (0 outside a process group)."""
    dist = torch.distributed
    return int(dist.get_rank()) if dist.is_available() and dist.is_initialized() else 0


def capturing() -> bool:
    """Whether a graph is being captured (``torch.export``, dynamo, ``jit.trace``): Python state
    read now would be frozen into the graph."""
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling())


_DENSE = torch._C.DispatchKey.Dense


def plain(x: torch.Tensor) -> bool:
    """An ordinary tensor with memory of its own (not a fake, functional or functorch one, nor
    the legacy batched tensor of ``autograd.functional.jacobian(vectorize=True)`` and
    ``autograd.grad(is_grads_batched=True)``, which lacks the dense dispatch key)."""
    return (type(x) is torch.Tensor and torch._C._dispatch_keys(x).has(_DENSE)
            and not torch._C._functorch.is_functorch_wrapped_tensor(x))


def check_not_recomputing(where: str, seeded: bool) -> None:
    """Refuse a draw from a module's own stream (``seeded``) or its ``generator=`` while autograd
    runs a backward: activation checkpointing (``torch.utils.checkpoint``, both modes) recomputing
    the forward. It restores torch's default generators only, so the recomputed draw would
    differ from the forward's and the gradients would silently use another mask (rule 7)."""
    if torch._C._current_graph_task_id() != -1:
        what = "seed=" if seeded else "generator="
        raise RuntimeError(
            f"{where}: a {where} built with {what} ran a training forward during backward (activation checkpointing "
            f"recomputing it): its {'stream' if seeded else 'generator'} has moved on since the forward, so the "
            "recomputed mask would differ from the forward's and the gradients would be wrong. Build it with "
            "seed=None and no generator= (its key then comes from torch's default generator, whose state "
            "torch.utils.checkpoint restores), or keep it outside the checkpointed function.")


class TensorDraw:
    """A draw whose four words (key k0, k1; counter low, high) are an int64 tensor made by a
    graph op, so a captured graph draws anew at each execution. The pure-torch Philox reads it."""

    __slots__ = ("words",)

    def __init__(self, words: torch.Tensor) -> None:
        self.words = words

    def continuous(self) -> TensorDraw:
        k0, k1 = _rng.CONTINUOUS_KEY
        w = self.words
        return TensorDraw(torch.stack((w[0] ^ k0, w[1] ^ k1, w[2], w[3])))

    def parts(self):
        w = self.words
        return w[0], w[1], w[2], w[3]


def _words(generator: torch.Generator | None, device) -> torch.Tensor:
    if generator is not None:
        return torch.randint(0, 1 << 32, (4,), dtype=torch.int64, generator=generator, device=generator.device)
    return torch.randint(0, 1 << 32, (4,), dtype=torch.int64, device=device)


def fresh_draw(generator: torch.Generator | None, device, lane: int = 0):
    """One call's draw from ``generator`` (None: torch's default generator of ``device``): four
    words, the key and a 64-bit counter, in lane ``lane`` (see rule 4). Inside a captured graph
    a :class:`TensorDraw` (the words stay a graph value), else a :class:`droplab._rng.Draw`."""
    if capturing():
        w = _words(generator, device)
        if lane:
            w = torch.stack((w[0], w[1], w[2], (w[3] + (lane << (_rng.LANE_SHIFT - 32))) & _M32))
        return TensorDraw(w)
    with torch._C._DisableFuncTorch():  # one draw per call, whatever vmap's randomness (its rule decides)
        k0, k1, c0, c1 = _words(generator, device).tolist()
    counter = (c0 | (c1 << 32)) + (lane << _rng.LANE_SHIFT)
    return _rng.NoiseStream.from_words(k0, k1).at(counter & ((1 << 64) - 1))


_CLONE = 0x434C4F4E  # SeedSequence tag of clone_stream ("CLON")


def clone_stream(rng: _rng.NoiseStream, index: int) -> _rng.NoiseStream:
    """The stream of the ``index``-th ``copy.deepcopy`` of a seeded module whose stream is
    ``rng`` (rule 3): its key derived from ``rng``'s key and counter and ``index``, so clones never
    repeat the original's masks or each other's, the same program makes the same clones, and
    ``rng`` itself does not move (a snapshot leaves the training run as it was)."""
    state = rng.state()
    (k0, k1), c = state["key"], state["counter"]
    ss = np.random.SeedSequence([k0, k1, c & _M32, c >> 32, _CLONE, int(index)])
    return _rng.NoiseStream(_rng.mask_key(ss))


class SharedGenerator:
    """Holds a module's ``generator=``: clones and replicas share it (``deepcopy`` returns the
    holder itself), so they draw from it in turn instead of repeating its draws."""

    __slots__ = ("generator",)

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"SharedGenerator({self.generator!r})"


# -- the random state of a whole model ------------------------------------------------------------
def _stateful(model: torch.nn.Module):
    from droplab.torch.modules import _Stateful

    if not isinstance(model, torch.nn.Module):
        raise InvalidTypeError(_validate.message("get_rng_state", "model", "a torch.nn.Module", type(model).__name__))
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _Stateful)]


def get_rng_state(model: torch.nn.Module) -> dict:
    """Everything droplab's modules in ``model`` draw from, to resume a run bit for bit.

    Returns a dict: ``"modules"`` maps each droplab module's qualified name to its stream's
    ``{"key": [k0, k1], "counter": c}`` (None for an unseeded module); ``"generators"`` maps
    the name of each unseeded module given a ``generator=`` to that generator's state;
    ``"torch"`` is ``torch.get_rng_state()`` when an unseeded module draws from torch's
    default generators (else absent), and ``"cuda"`` then ``torch.cuda.get_rng_state_all()``
    as well, when CUDA is initialised (unseeded modules on a GPU draw from its generator;
    nothing touches CUDA otherwise). A module registered under two names is listed once.
    Pass it to :func:`set_rng_state` (it pickles with ``torch.save``); a state taken without
    ``"cuda"`` loads anywhere, and one with it loads on a machine without CUDA (which has no
    CUDA generator to restore).

    Example:
        >>> import torch, droplab.torch as dt
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 3), dt.Dropout(0.5, seed=0))
        >>> state = dt.get_rng_state(net)
        >>> a = net(torch.ones(2, 3))
        >>> dt.set_rng_state(net, state)
        >>> bool(torch.equal(net(torch.ones(2, 3)), a))
        True
    """
    modules, generators, default = {}, {}, False
    for name, m in _stateful(model):
        modules[name] = None if m.rng is None else m.rng.state()
        if m.rng is None:
            g = m._generator.generator
            if g is None:
                default = True
            else:
                generators[name] = g.get_state()
    state = {"modules": modules, "generators": generators}
    if default:
        state["torch"] = torch.get_rng_state()
        if _cuda_ready():
            state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _cuda_ready() -> bool:
    """CUDA is there and has been initialised (a process that never used it has nothing to save,
    and asking would initialise it)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def set_rng_state(model: torch.nn.Module, state: dict) -> None:
    """Restore :func:`get_rng_state`'s ``state`` into ``model`` (the same module names).

    Raises:
        ValueError: ``state`` is not such a dict, or names other modules than ``model`` has.
    """
    where = "set_rng_state"
    if not isinstance(state, dict) or "modules" not in state:
        raise InvalidValueError(_validate.message(where, "state", "the dict droplab.torch.get_rng_state returned",
                                           type(state).__name__))
    mods = dict(_stateful(model))
    names = state["modules"]
    if set(names) != set(mods):
        raise InvalidValueError(_validate.message(where, "state", f"the state of modules {sorted(mods)}", sorted(names),
                                           "Take it with get_rng_state from a model of the same structure."))
    for name, s in names.items():
        mods[name].rng = None if s is None else _rng.NoiseStream.from_state(s, where)
    for name, g_state in state.get("generators", {}).items():
        g = mods[name]._generator.generator
        if g is not None:
            g.set_state(g_state)
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        for device, g_state in enumerate(state["cuda"][:torch.cuda.device_count()]):  # the devices both have
            torch.cuda.set_rng_state(g_state, device)
