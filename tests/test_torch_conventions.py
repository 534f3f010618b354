"""droplab.torch behaves like a PyTorch module wherever PyTorch users put it (issue 15).

One test per numbered fault of the issue (each failed on 59c7c62), then the rules they rest
on: global seeding, clones, DataParallel replicas and DDP ranks (a real two-process gloo run),
double backward (gradcheck and gradgradcheck in float64 for every variant, the mask fixed by a
seed), torch.func transforms and captured graphs for every variant, checkpoints, MC
prediction, schedules and patch.
"""

import copy
import dataclasses
import json
import logging
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import droplab.torch as dt  # noqa: E402
from droplab import family, kernels, nn  # noqa: E402
from droplab.torch import functional as F  # noqa: E402

ELEMENTWISE = {  # registry name -> (options, per-sample input shape)
    "dropout": ({}, (4, 6)),
    "dropout1d": ({}, (4, 3, 5)),
    "dropout2d": ({}, (4, 3, 2, 3)),
    "dropout3d": ({}, (2, 3, 2, 2, 2)),
    "alpha_dropout": ({}, (4, 6)),
    "gaussian_dropout": ({}, (4, 6)),
    "drop_path": ({}, (4, 6)),
    "locked_dropout": ({}, (2, 3, 4)),
    "drop_block2d": ({"block_size": 2}, (2, 2, 4, 4)),
}


def _elementwise(name, seed=None, p=0.3):
    options, shape = ELEMENTWISE[name]
    return dt.variant(name)(p, seed=seed, **options), shape


def _every_variant(seed=None):
    """(name, module, per-sample input shape) for every registered variant, float64."""
    out = [(n, *_elementwise(n, seed)) for n in ELEMENTWISE]
    out.append(("drop_connect", dt.DropConnect(6, 3, 0.3, seed=seed, dtype=torch.float64), (4, 6)))
    out.append(("concrete_dropout", dt.ConcreteDropout(p=0.3, seed=seed), (4, 6)))
    return out


def test_every_registered_variant_is_covered():
    assert {s.name for s in family.specs()} == {n for n, _, _ in _every_variant()}


def _x(shape, seed=0):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# -- 1. double backward --------------------------------------------------------------------------
def test_fault1_double_backward_is_exact_and_a_gradient_penalty_reaches_later_layers(seed):
    x = _x((5, 7), seed)
    layer = dt.Dropout(0.3, seed=seed)

    def f(t):
        layer.counter = 0  # the same mask at every call
        return (layer(t) ** 2).sum()

    _, hv = torch.autograd.functional.hvp(f, x, torch.ones_like(x))
    mask = torch.from_numpy(layer.rng.at(0).keep_mask((5, 7), 0.3)).double() * kernels.keep_scale(0.3)
    assert torch.equal(hv, 2 * mask**2)  # was all zeros

    # WGAN-GP: the penalty's gradient must reach the layers after the dropout
    critic = torch.nn.Sequential(torch.nn.Linear(7, 8), dt.Dropout(0.3, seed=seed), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 1)).double()
    xr = x.clone().requires_grad_()
    g, = torch.autograd.grad(critic(xr).sum(), xr, create_graph=True)
    ((g.norm(2, dim=1) - 1) ** 2).mean().backward()
    assert critic[3].weight.grad is not None and bool((critic[3].weight.grad != 0).any())


# -- 2. torch.manual_seed ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: dt.Dropout(0.5), lambda: dt.GaussianDropout(0.5), lambda: dt.AlphaDropout(0.5), lambda: dt.DropPath(0.5),
    lambda: dt.patch(torch.nn.Sequential(torch.nn.Dropout(0.5))),
    lambda: (lambda t: F.dropout(t, 0.5)),
], ids=["Dropout", "Gaussian", "Alpha", "DropPath", "patch", "functional"])
def test_fault2_unseeded_modules_follow_torch_manual_seed(make, seed):
    x = torch.ones(64, 32)
    runs = []
    for _ in range(2):
        torch.manual_seed(seed)
        m = make()
        runs.append((m(x), m(x)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[0][1])  # each forward draws anew


def test_fault2_construction_draws_nothing_so_other_layers_initialise_as_before(seed):
    torch.manual_seed(seed)
    plain = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    torch.manual_seed(seed)
    ours = torch.nn.Sequential(torch.nn.Linear(4, 8), dt.Dropout(0.5), dt.GaussianDropout(0.2), torch.nn.Linear(8, 2))
    assert torch.equal(plain[2].weight, ours[3].weight)
    # and a droplab module draws exactly what torch.nn.Dropout's forward consumes: nothing else moves
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    a = dt.Dropout(0.5, generator=g1)
    a(torch.ones(3)), a.eval()(torch.ones(3))
    torch.randint(0, 1 << 32, (4,), generator=g2, dtype=torch.int64)
    assert torch.equal(g1.get_state(), g2.get_state())  # one draw per training forward, none in eval


# -- 3. clones ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeded", [True, False])
def test_fault3_clones_never_repeat_masks(seeded, seed):
    x = torch.ones(200)
    d = dt.Dropout(0.5, seed=seed if seeded else None)
    clone = copy.deepcopy(d)
    assert not torch.equal(d(x), clone(x))
    layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.5, batch_first=True)
    enc = torch.nn.TransformerEncoder(dt.patch(layer, seed=seed if seeded else None), 3, enable_nested_tensor=False)
    drops = [m.dropout1 for m in enc.layers]
    assert len({id(m) for m in drops}) == 3
    outs = [m(torch.ones(4, 16)) for m in drops]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


def test_a_generator_is_shared_by_clones_not_copied(seed):
    g = torch.Generator().manual_seed(seed)
    d = dt.Dropout(0.5, generator=g)
    c = copy.deepcopy(d)
    assert c.generator is g and not torch.equal(d(torch.ones(100)), c(torch.ones(100)))


# -- 4. DataParallel and DDP --------------------------------------------------------------------------
def _cpu_replicate(monkeypatch):
    """nn.parallel.replicate on the CPU: its module copies (``_replicate_for_data_parallel``)
    as DataParallel makes them each step, with the GPU broadcast replaced by references."""
    mod = sys.modules["torch.nn.parallel.replicate"]
    monkeypatch.setattr(mod, "_broadcast_coalesced_reshape",
                        lambda tensors, devices, detach=False: [[t.detach() if detach else t for t in tensors]
                                                                for _ in devices])
    monkeypatch.setattr(mod, "_get_device_index", lambda d, optional=False, allow_cpu=False: -1)
    return lambda net, n: mod.replicate(net, [torch.device("cpu")] * n)


@pytest.mark.parametrize("seeded", [True, False])
def test_fault4_dataparallel_replicas_draw_their_own_masks_at_every_step(seeded, monkeypatch, seed):
    replicate = _cpu_replicate(monkeypatch)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), dt.Dropout(0.5, seed=seed if seeded else None))
    x = torch.ones(4, 8)
    seen = []
    for _ in range(3):  # DataParallel replicates at each forward
        reps = replicate(net, 2)
        seen += [(r(x) == 0) for r in reps]
    for i in range(len(seen)):
        for j in range(i):
            assert not torch.equal(seen[i], seen[j]), (i, j)


def test_fault4_a_replicas_masks_do_not_depend_on_which_thread_runs_first(monkeypatch, seed):
    # DataParallel runs its replicas in threads: a stream shared by the replicas would hand out
    # its calls in whatever order the threads reach it
    replicate = _cpu_replicate(monkeypatch)
    x = torch.ones(4, 8)
    outs = []
    for order in ((0, 1), (1, 0)):
        reps = replicate(torch.nn.Sequential(dt.Dropout(0.5, seed=seed)), 2)
        got = {i: reps[i](x) for i in order}
        outs.append([got[0], got[1]])
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_fault4_replicas_are_reproducible_and_resumable(monkeypatch, seed):
    replicate = _cpu_replicate(monkeypatch)

    def run(net, steps):
        return [r(torch.ones(4, 8)) for _ in range(steps) for r in replicate(net, 2)]

    a = torch.nn.Sequential(dt.Dropout(0.5, seed=seed))
    first = run(a, 1)
    state = dt.get_rng_state(a)
    rest = run(a, 2)
    b = torch.nn.Sequential(dt.Dropout(0.5, seed=seed))
    dt.set_rng_state(b, state)
    assert all(torch.equal(u, v) for u, v in zip(run(b, 2), rest))
    assert all(torch.equal(u, v) for u, v in zip(run(torch.nn.Sequential(dt.Dropout(0.5, seed=seed)), 1), first))


_DDP_SCRIPT = textwrap.dedent('''
    import datetime, json, sys
    import torch, torch.distributed as dist
    import droplab.torch as dt
    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    torch.manual_seed(0)  # the usual DDP setup: the same seed (and weights) on every rank
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), dt.Dropout(0.5, seed=7), torch.nn.Linear(64, 1))
    dropped = []
    net[1].register_forward_hook(lambda m, i, o: dropped.append(((o == 0) & (i[0] != 0)).int().tolist()))
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    for _ in range(2):
        ddp(torch.ones(4, 8)).sum().backward()
    unseeded = dt.Dropout(0.5)
    plain = (unseeded(torch.ones(4, 64)) == 0).int().tolist()
    json.dump({"seeded": dropped, "unseeded": plain}, open(out, "w"))
    dist.barrier()
    dist.destroy_process_group()
''')


@pytest.mark.slow
def test_fault4_ddp_ranks_with_the_same_seed_draw_different_masks(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(port), str(tmp_path / f"r{r}.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    r0, r1 = (json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2))
    assert r0["seeded"] != r1["seeded"] and r0["unseeded"] != r1["unseeded"]
    single = dt.Dropout(0.5, seed=7)  # rank 0 draws what a single process draws
    assert r0["seeded"] == [(single(torch.ones(4, 64)) == 0).int().tolist() for _ in range(2)]


def test_rank_lanes_offset_the_counter_and_can_be_switched_off(monkeypatch, seed):
    from droplab.torch import _random

    x = torch.ones(500)
    base = dt.Dropout(0.5, seed=seed)(x)
    monkeypatch.setattr(_random, "rank", lambda: 1)
    d = dt.Dropout(0.5, seed=seed)
    y = d(x)
    assert not torch.equal(y, base)
    assert torch.equal(y != 0, torch.from_numpy(d.rng.at(1 << 48).keep_mask((500,), 0.5)))
    d2 = dt.Dropout(0.5, seed=seed)
    d2.rank_lanes = False
    assert torch.equal(d2(x), base)


# -- 5, 6. MC prediction --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: dt.Dropout(0.5, axes=0), lambda: dt.Dropout(0.5, axes=(0, 1)), lambda: dt.GaussianDropout(0.5, axes=0),
    lambda: dt.AlphaDropout(0.5, axes=0),
], ids=["axes0", "axes01", "gaussian", "alpha"])
def test_fault5_batch_shared_masks_are_not_stacked(make, seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), make(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 6)
    r = dt.mc_predict(net, x, samples=50, seed=seed)
    assert r.stacked is False
    assert float(r.std.max()) > 0.01 and float(r.mutual_information.max()) > 0  # was exactly 0


def _bn_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                               dt.Dropout(0.3, seed=seed), torch.nn.Dropout(0.2), dt.Dropout(0.2),
                               torch.nn.Linear(16, 3)).eval()


def test_fault6_mc_predict_takes_a_seed_leaves_every_stream_alone_and_returns_nns_result(seed):
    net = _bn_net(seed)
    x = torch.randn(7, 4)
    before, torch_before = dt.get_rng_state(net), torch.get_rng_state()
    a = dt.mc_predict(net, x, samples=20, seed=seed)
    b = dt.mc_predict(net, x, samples=20, seed=seed)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.mean, b.mean)
    assert dt.get_rng_state(net)["modules"] == before["modules"]  # counters untouched
    assert torch.equal(torch.get_rng_state(), torch_before)  # torch's generator too
    assert not torch.equal(dt.mc_predict(net, x, samples=20, seed=seed + 1).mean, a.mean)
    ref = nn.mc_predict(nn.Sequential(nn.Dense(4, 3), nn.Dropout(0.3), seed=0), np.ones((2, 4), np.float32),
                        samples=3, seed=0)
    assert type(a) is type(ref)
    assert [f.name for f in dataclasses.fields(a)] == [f.name for f in dataclasses.fields(ref)]
    assert a.kind == "classification" and a.T == 20 and a.stacked and a.mean.device == x.device
    assert isinstance(a.variation_ratio, torch.Tensor) and isinstance(ref.mean, np.ndarray)
    assert len(repr(a)) < 300 and "T=20" in repr(a)


def test_mc_predict_matches_nn_semantics(seed):
    net = _bn_net(seed)
    x = torch.randn(6, 4)
    calls = []
    net[0].register_forward_hook(lambda *a: calls.append(1))
    r = dt.mc_predict(net, x, samples=10, seed=seed, keep_samples=False)
    assert r.samples is None and len(calls) == 1
    torch.manual_seed(seed)
    zero = torch.nn.Sequential(torch.nn.Linear(4, 3), dt.Dropout(0.0), torch.nn.Dropout(0.0))
    z = dt.mc_predict(zero, x, samples=5)  # nothing samples: one eval pass, exact zeros
    assert torch.equal(z.mean, torch.softmax(zero(x), -1).double()) and bool((z.std == 0).all())
    reg = dt.mc_predict(torch.nn.Sequential(torch.nn.Linear(4, 2), dt.Dropout(0.5)), x, samples=8, seed=0,
                        output="raw", tau=4.0)
    assert reg.kind == "regression" and reg.entropy is None and torch.allclose(reg.variance, reg.std**2 + 0.25)
    # seed=None: as a training forward, the seeded modules' streams advance (as nn.mc_predict)
    c = net[3].counter
    dt.mc_predict(net, x, samples=4)
    assert net[3].counter == c + 1
    with pytest.raises(ValueError, match=r"mc_predict: `samples` must be an integer in \[1, 10000\]"):
        dt.mc_predict(net, x, samples=10_001)
    with pytest.raises(ValueError, match=r"mc_predict: `output` must be one of 'logits', 'probs', 'raw'"):
        dt.mc_predict(net, x, output="log")


# -- 7. checkpoints -----------------------------------------------------------------------------------
class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 6)
        self.drop = torch.nn.Dropout(0.3)
        self.attn_drop = self.drop  # one module, two names
        self.chan = torch.nn.Dropout1d(0.1)

    def forward(self, x):
        return self.chan(self.attn_drop(self.drop(self.fc(x))).unsqueeze(-1)).squeeze(-1)


def test_fault7_plain_checkpoints_load_strictly_both_ways(seed):
    torch.manual_seed(seed)
    plain = _Block()
    patched = dt.patch(copy.deepcopy(plain), seed=seed)
    assert list(patched.state_dict()) == list(plain.state_dict())
    patched.load_state_dict(plain.state_dict(), strict=True)
    plain.load_state_dict(patched.state_dict(), strict=True)


def test_checkpoints_resume_bit_exact_with_seeded_and_unseeded_modules(seed):
    def make():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(5, 16), dt.Dropout(0.4, seed=seed), torch.nn.ReLU(),
                                  dt.GaussianDropout(0.2), torch.nn.Linear(16, 2))
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        return net, opt, dt.RateScheduler(net, dt.LinearRamp(0.1, 0.4, 4))

    x, y = torch.randn(32, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 2, (32,))

    def step(net, opt, sched):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        return float(loss)

    net, opt, sched = make()
    losses = [step(net, opt, sched) for _ in range(2)]
    ckpt = dt.checkpoint(net, opt, sched, epoch=2)
    losses += [step(net, opt, sched) for _ in range(3)]
    net2, opt2, sched2 = make()
    torch.manual_seed(seed + 99)  # whatever the generator did since: restore puts it back
    dt.restore(ckpt, net2, opt2, sched2)
    assert ckpt["epoch"] == 2 and sched2.last_step == 2 and net2[1].p == sched.schedule(2)
    assert [step(net2, opt2, sched2) for _ in range(3)] == losses[2:]


def test_rng_state_errors():
    net = torch.nn.Sequential(dt.Dropout(0.5, seed=0))
    with pytest.raises(ValueError, match=r"set_rng_state: `state` must be the state of modules \['0'\]"):
        dt.set_rng_state(net, {"modules": {"1": None}})
    with pytest.raises(ValueError, match=r"set_rng_state: `state` must be the dict droplab.torch.get_rng_state"):
        dt.set_rng_state(net, {})
    with pytest.raises(TypeError, match=r"get_rng_state: `model` must be a torch.nn.Module"):
        dt.get_rng_state("net")
    with pytest.raises(RuntimeError, match=r"Dropout: cannot set `counter`: an unseeded module"):
        dt.Dropout(0.5).counter = 3
    with pytest.raises(ValueError, match=r"RateScheduler: `state` must be a dict with 'last_step'"):
        dt.RateScheduler(net, dt.Constant(0.1)).load_state_dict({})


# -- 8. patch ------------------------------------------------------------------------------------------
def test_fault8_patch_replaces_every_alias_keeps_sharing_maps_to_the_equivalent_and_says_so(caplog, seed):
    block = _Block().eval()
    with caplog.at_level(logging.INFO, logger="droplab.torch"):
        out = dt.patch(block)
    assert out is block and type(block.drop) is dt.Dropout and block.attn_drop is block.drop
    assert type(block.chan) is dt.Dropout1d and block.chan.p == 0.1 and not block.drop.training  # attack 15, fault 4
    assert "droplab.Dropout(p=0.3)" in str(block) and "\n  (drop): Dropout(" not in str(block)
    assert "patch: drop = attn_drop: Dropout(p=0.3, inplace=False) -> droplab.Dropout(p=0.3)" in caplog.text
    assert "chan:" in caplog.text
    block(torch.ones(2, 6))


# -- 9. transforms and captured graphs --------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n, _, _ in _every_variant()])
def test_fault9_vmap_grad_jacrev_and_export_run_in_training_mode(name):
    _, m, shape = next(v for v in _every_variant() if v[0] == name)
    x, xs = _x(shape), _x((3,) + shape, 1)
    y = torch.func.vmap(m, randomness="different")(xs)
    assert y.shape[0] == 3 and not torch.equal(y[0], y[1])
    same = torch.func.vmap(m, randomness="same")(torch.stack([x, x, x]))
    assert torch.equal(same[0], same[1])
    with pytest.raises(RuntimeError, match=r"vmap\(randomness='error'\) refuses random operations"):
        torch.func.vmap(m)(xs)
    g = torch.func.grad(lambda t: m(t).sum())(x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all())
    assert torch.func.jacrev(m)(x).shape[-len(shape):] == x.shape
    assert torch.func.jacfwd(m)(x).shape[-len(shape):] == x.shape
    f = torch.export.export(m.train(), (x,)).module()
    a, b = f(x), f(x)
    assert a.shape == m(x).shape and not torch.equal(a, b)  # a fresh mask per execution


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if family.get(n).bernoulli or n == "alpha_dropout"])
def test_an_exported_graph_draws_eagers_mask_for_the_same_torch_seed(name, seed):
    m, shape = _elementwise(name)
    x = _x(shape)
    f = torch.export.export(m.train(), (x,)).module()
    torch.manual_seed(seed)
    eager = m(x)
    torch.manual_seed(seed)
    assert torch.equal(f(x), eager)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_vmap_different_is_eager_on_the_stacked_batch_and_same_is_one_mask(name, seed):
    m, shape = _elementwise(name, seed)
    xs = _x((3,) + shape)
    y = torch.func.vmap(m, randomness="different")(xs)
    twin, _ = _elementwise(name, seed)
    assert torch.equal(y, twin(xs.reshape((-1,) + shape[1:])).reshape(y.shape))
    y = torch.func.vmap(m, randomness="same")(xs)
    for i in range(3):
        twin.counter = 1  # m's second call
        assert torch.equal(y[i], twin(xs[i]))


def test_captures_of_seeded_modules_refuse_and_scripting_names_torch_compile():
    x = torch.ones(4, 6)
    with pytest.raises(Exception, match=r"Dropout: a seeded Dropout cannot be captured in training mode"):
        torch.export.export(dt.Dropout(0.3, seed=0), (x,))
    with pytest.raises(RuntimeError, match=r"DropPath: a seeded DropPath cannot be captured"):
        torch.jit.trace(dt.DropPath(0.3, seed=0), (x,))
    torch.export.export(dt.Dropout(0.3, seed=0).eval(), (x,))  # nothing random to freeze in eval
    with pytest.raises(RuntimeError, match=r"Dropout: torch.jit.script cannot compile droplab modules.*torch.compile"):
        torch.jit.script(torch.nn.Sequential(torch.nn.Linear(6, 6), dt.Dropout(0.3)))


def test_jit_trace_of_an_unseeded_module_draws_anew_in_every_dtype():
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.ones(64, dtype=dtype)
        traced = torch.jit.trace(dt.Dropout1d(0.5), (x.reshape(8, 8, 1),), check_trace=False)
        assert not torch.equal(traced(x.reshape(8, 8, 1)), traced(x.reshape(8, 8, 1)))


# -- double backward for every variant ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_gradcheck_and_gradgradcheck_for_every_elementwise_variant(name, seed):
    m, shape = _elementwise(name, seed)
    x = _x(shape, seed).requires_grad_()

    def f(t):
        m.counter = 0
        return m(t)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradgradcheck(f, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_and_gradgradcheck_for_dropconnect_and_concrete(seed):
    dc = dt.DropConnect(4, 3, 0.4, seed=seed, dtype=torch.float64, activation=torch.nn.Tanh())
    x = _x((5, 4), seed).requires_grad_()
    w = dc.weight.detach().clone().requires_grad_()

    def f(t, weight):
        dc.counter = 0
        return torch.func.functional_call(dc, {"weight": weight, "bias": dc.bias}, (t,))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradgradcheck(f, (x, w), eps=1e-6, atol=1e-8, rtol=1e-6)
    cd = dt.ConcreteDropout(p=0.3, seed=seed)
    logit = torch.tensor(cd.spec.logit_of(0.3), dtype=torch.float64, requires_grad=True)

    def g(t, lg):
        cd.counter = 0
        return torch.func.functional_call(cd, {"p_logit": lg}, (t,))

    assert torch.autograd.gradcheck(g, (x, logit), eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradgradcheck(g, (x, logit), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_the_default_path_saves_no_mask_for_backward():
    x = torch.randn(256, 128).requires_grad_()
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = dt.Dropout(0.5)(x)  # unseeded: the default
    assert packed == [] and type(y.grad_fn).__name__ == "NoiseFunctionBackward"


# -- functional forms, schedules, the doctor hook -------------------------------------------------------------
def test_functional_forms_take_a_generator(seed):
    x = torch.ones(300)
    a = F.dropout(x, 0.5, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, F.dropout(x, 0.5, generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(F.gaussian_dropout(x, 0.2, generator=torch.Generator().manual_seed(seed)),
                       F.gaussian_dropout(x, 0.2, generator=torch.Generator().manual_seed(seed)))
    with pytest.raises(ValueError, match=r"dropout: `generator` must be None when `seed` is given"):
        F.dropout(x, 0.5, seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"dropout: `generator` must be a torch.Generator or None"):
        F.dropout(x, 0.5, generator=1)
    with pytest.raises(ValueError, match=r"dropout: `counter` must be 0 without `seed`"):
        F.dropout(x, 0.5, counter=3)


def test_rate_scheduler_state_dict_resumes_the_schedule():
    net = torch.nn.Sequential(dt.Dropout(0.0, seed=0), torch.nn.Dropout(0.0))
    sched = dt.RateScheduler(net, dt.LinearRamp(0.0, 0.4, 4))
    for _ in range(3):
        sched.step()
    twin = torch.nn.Sequential(dt.Dropout(0.0, seed=0), torch.nn.Dropout(0.0))
    resumed = dt.RateScheduler(twin, dt.LinearRamp(0.0, 0.4, 4))
    resumed.load_state_dict(sched.state_dict())
    assert sched.state_dict() == {"last_step": 3} and twin[0].p == twin[1].p == net[0].p
    assert resumed.step() == sched.step()


def test_importing_droplab_torch_does_not_import_the_doctor():
    code = "import sys, droplab.torch as dt; print('droplab.doctor' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr
    from droplab.doctor import check_torch_model

    assert dt.doctor is check_torch_model


def test_readme_migration_example_runs_as_written():
    import contextlib
    import io
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Using droplab with PyTorch"):readme.index("## The command line")]
    code = next(b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "dt.patch(Net())" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().splitlines() == ["droplab.Dropout(p=0.1) True",
                                           "drop = attn_drop: torch.nn.Dropout -> droplab.torch.Dropout",
                                           "torch.Size([64, 3]) classification True"]
