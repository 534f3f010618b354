"""droplab.torch against a fresh user's attack (attack 15): one test (or one parametrised
family) per fault, each failing before its fix, then the correct cases around it.

1. per-sample gradients under ``vmap(grad)`` used sample 0's noise; 2. activation
checkpointing recomputed a seeded (or ``generator=``) module with another mask; 3. ``mc_predict``
saw no uncertainty on transformers (PyTorch's fused path skipped the dropout modules);
4. ``patch`` turned every torch dropout into element-wise ``Dropout``; 5. ``copy.deepcopy``
moved the original's stream; 6. vectorised Jacobians crashed; 7. ``inplace`` was refused;
8. ``get_rng_state`` left out CUDA's generators; 9. ``patch`` reported only through a logger.
"""

import copy
import logging

import pytest

torch = pytest.importorskip("torch")

import droplab.torch as dt  # noqa: E402
from droplab import family  # noqa: E402
from droplab.torch import functional as F  # noqa: E402
from torch.func import grad, jacrev, vjp, vmap  # noqa: E402

from test_torch_conventions import ELEMENTWISE  # noqa: E402  (registry name -> (options, per-sample shape))


def _make(name, seed, p=0.3):
    """(module, per-sample input shape) of every registered variant, float64."""
    if name == "drop_connect":
        torch.manual_seed(seed)  # its weights: twins alike
        return dt.DropConnect(6, 3, p, seed=seed, dtype=torch.float64), (4, 6)
    if name == "concrete_dropout":
        return dt.ConcreteDropout(p=p, seed=seed), (4, 6)
    options, shape = ELEMENTWISE[name]
    return dt.variant(name)(p, seed=seed, **options), shape


VARIANTS = list(ELEMENTWISE) + ["drop_connect", "concrete_dropout"]


def _x(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, dtype=torch.float64, generator=g) + 0.5  # no zeros: a zero hides a mask


def test_every_registered_variant_is_covered():
    assert {s.name for s in family.specs()} == set(VARIANTS)


def _loss(y):
    return (y * y + y).sum()  # nonlinear: the gradient depends on the output, not only on the mask


# -- 1. per-sample gradients under vmap -------------------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
def test_fault1_vmap_grad_gives_every_sample_the_gradient_of_its_own_noise(name, seed):
    m, shape = _make(name, seed)
    xs = _x((3,) + shape, seed)
    g, y = vmap(grad(lambda t: _aux(m, t), has_aux=True), randomness="different")(xs)
    # the reference: plain autograd through the vmapped forward (the physical, stacked noise)
    twin, _ = _make(name, seed)
    xr = xs.clone().requires_grad_()
    yr = vmap(twin, randomness="different")(xr)
    gr, = torch.autograd.grad(_loss(yr), xr)
    assert torch.equal(y, yr.detach())
    torch.testing.assert_close(g, gr, rtol=1e-13, atol=0)
    assert not torch.equal(g[0], g[1])
    if name in ELEMENTWISE:  # and eager on the batch with the mapped dimension merged into axis 0
        eager, _ = _make(name, seed)
        xe = xs.reshape((-1,) + shape[1:]).clone().requires_grad_()
        ge, = torch.autograd.grad(_loss(eager(xe)), xe)
        torch.testing.assert_close(g, ge.reshape(g.shape), rtol=1e-13, atol=0)


def _aux(m, t):
    y = m(t)
    return _loss(y), y


@pytest.mark.parametrize("name", VARIANTS)
def test_fault1_vmap_vjp_and_jvp_follow_each_samples_noise_even_with_an_unmapped_cotangent(name, seed):
    m, shape = _make(name, seed)
    xs = _x((3,) + shape, seed)
    ones = torch.ones(_make(name, seed)[0](xs[0]).shape, dtype=torch.float64)

    def k(t):
        y, fn = vjp(m, t)
        return y, fn(ones)[0], fn(torch.ones_like(y))[0]  # a cotangent made outside the map, one inside

    y, g_out, g_in = vmap(k, randomness="different")(xs)
    twin, _ = _make(name, seed)
    xr = xs.clone().requires_grad_()
    ref, = torch.autograd.grad(vmap(twin, randomness="different")(xr).sum(), xr)
    torch.testing.assert_close(g_out, ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(g_in, ref, rtol=1e-13, atol=0)
    if name not in ("drop_connect", "concrete_dropout"):  # output = input shape: jvp's tangent is ref's
        m.counter = 0
        _, t = vmap(lambda u: torch.func.jvp(m, (u,), (torch.ones(shape, dtype=torch.float64),)),
                    randomness="different")(xs)
        torch.testing.assert_close(t, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_fault1_jacobians_under_and_outside_vmap_are_each_samples_mask(name, seed):
    m, shape = _make(name, seed)
    xs = _x((3,) + shape, seed)
    k = xs[0].numel()
    J = vmap(jacrev(m), randomness="different")(xs)  # more physical dims (cotangents) than the stacked lead
    eager, _ = _make(name, seed)
    xe = xs.reshape((-1,) + shape[1:]).clone().requires_grad_()
    mult, = torch.autograd.grad(eager(xe).sum(), xe)  # the element-wise factor of every sample
    mult = mult.reshape(3, k)
    for i in range(3):
        assert torch.equal(J[i].reshape(k, k), torch.diag(mult[i]))
    # a forward outside vmap, its backward under jacrev's vmap: one mask for every cotangent row
    m.counter = 0
    J0 = jacrev(m)(xs[0])
    m.counter = 0
    x0 = xs[0].clone().requires_grad_()
    g0, = torch.autograd.grad(m(x0).sum(), x0)
    assert torch.equal(J0.reshape(k, k), torch.diag(g0.reshape(-1)))


@pytest.mark.parametrize("name", ["dropout", "dropout1d", "alpha_dropout", "drop_block2d"])
def test_fault1_nested_vmaps_stack_outermost_first_and_same_is_shared_along_its_level(name, seed):
    m, shape = _make(name, seed)
    xs = _x((2, 3) + shape, seed)
    g, y = vmap(vmap(grad(lambda t: _aux(m, t), has_aux=True), randomness="different"),
                randomness="different")(xs)
    eager, _ = _make(name, seed)
    xe = xs.reshape((-1,) + shape[1:]).clone().requires_grad_()
    ye = eager(xe)
    ge, = torch.autograd.grad(_loss(ye), xe)
    assert torch.equal(y, ye.detach().reshape(y.shape))
    torch.testing.assert_close(g, ge.reshape(g.shape), rtol=1e-13, atol=0)
    # "different" outside "same" (was a broadcast error or, at equal sizes, the wrong axis shared)
    for sizes in ((3, 2), (3, 3)):
        x = _x(shape, seed).expand(sizes + shape).clone()  # equal slices: equal noise gives equal outputs
        y = vmap(vmap(m, randomness="same"), randomness="different")(x)
        assert torch.equal(y[:, 0], y[:, 1]) and not torch.equal(y[0], y[1])
        y = vmap(vmap(m, randomness="different"), randomness="same")(x)
        assert torch.equal(y[0], y[1]) and not torch.equal(y[:, 0], y[:, 1])


@pytest.mark.parametrize("name", ["concrete_dropout", "drop_connect", "drop_connect_per_example"])
def test_recheck15_nested_different_vmaps_draw_per_slice_noise_for_concrete_and_dropconnect(name, seed):
    """vmap(vmap(m, "different"), "different") crashed (the inner level's batch was put before the
    outer one's). The noise is the single vmap's over the merged batch, independent per slice."""
    def make():
        if name == "drop_connect_per_example":
            torch.manual_seed(seed)
            return dt.DropConnect(6, 3, 0.3, seed=seed, per="example", dtype=torch.float64), (4, 6)
        return _make(name, seed)
    m, shape = make()
    xs = _x((2, 3) + shape, seed)
    g, y = vmap(vmap(grad(lambda t: _aux(m, t), has_aux=True), randomness="different"),
                randomness="different")(xs)
    twin, _ = make()
    xr = xs.reshape((-1,) + shape).clone().requires_grad_()
    yr = vmap(twin, randomness="different")(xr)
    gr, = torch.autograd.grad(_loss(yr), xr)
    assert torch.equal(y, yr.detach().reshape(y.shape))
    torch.testing.assert_close(g, gr.reshape(g.shape), rtol=1e-13, atol=0)
    m2, _ = make()
    x = _x(shape, seed).expand((3, 3) + shape).clone()  # equal slices: only the noise tells them apart
    y = vmap(vmap(m2, randomness="different"), randomness="different")(x)
    assert all(not torch.equal(y[a, b], y[c, d]) for a in range(3) for b in range(3)
               for c in range(3) for d in range(3) if (a, b) != (c, d))


def test_fault1_the_attack_scripts_case_dropout_grad_is_twice_the_own_mask():
    torch.manual_seed(0)
    d = dt.Dropout(0.5)
    x = torch.rand(4, 8) + 1.0
    g, y = vmap(grad(lambda t: _sum_aux(d, t), has_aux=True), randomness="different")(x)
    assert all(torch.equal(g[i], (y[i] != 0).float() * 2.0) for i in range(4))


def _sum_aux(m, t):
    y = m(t)
    return y.sum(), y


# -- 2. activation checkpointing --------------------------------------------------------------------------
def _ckpt_net(kind, seed):
    torch.manual_seed(seed)
    lin1, lin2 = torch.nn.Linear(6, 32).double(), torch.nn.Linear(32, 3).double()
    if kind == "unseeded":
        drop = dt.Dropout(0.5)
    elif kind == "seeded":
        drop = dt.Dropout(0.5, seed=seed)
    else:
        drop = dt.Dropout(0.5, generator=torch.Generator().manual_seed(seed))
    return lin1, drop, lin2


@pytest.mark.parametrize("reentrant", [True, False])
@pytest.mark.parametrize("kind", ["unseeded", "seeded", "generator"])
def test_fault2_checkpointing_through_dropout_is_exact_or_refused(kind, reentrant, seed):
    from torch.utils.checkpoint import checkpoint

    x = _x((5, 6), seed)

    def run(checkpointed):
        lin1, drop, lin2 = _ckpt_net(kind, seed)
        torch.manual_seed(seed + 1)
        body = lambda h: lin2(drop(h))  # noqa: E731 -- a Linear after the dropout: its input is recomputed
        h = lin1(x)
        out = checkpoint(body, h, use_reentrant=reentrant) if checkpointed else body(h)
        (out ** 2).sum().backward()
        return [lin1.weight.grad, lin2.weight.grad]

    plain = run(False)
    if kind == "unseeded":  # its key comes from torch's generator, which checkpoint restores
        assert all(torch.equal(a, b) for a, b in zip(run(True), plain))
    else:
        what = "seed=" if kind == "seeded" else "generator="
        with pytest.raises(RuntimeError, match=rf"Dropout: a Dropout built with {what} ran a training forward "
                                               r"during backward .*Build it with seed=None and no generator="):
            run(True)


def test_fault2_checkpointing_that_never_recomputes_the_dropout_stays_exact_and_functional_forms_refuse(seed):
    from torch.utils.checkpoint import checkpoint

    x = _x((2, 12), seed).requires_grad_()
    d = dt.Dropout(0.5, seed=seed)
    y = checkpoint(d, x * 1.0, use_reentrant=False)  # nothing saved after it: no recomputation
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)
    g = torch.Generator().manual_seed(seed)
    h = _x((2, 12), seed).requires_grad_()
    with pytest.raises(RuntimeError, match=r"dropout: a dropout built with generator= ran a training forward"):
        checkpoint(lambda t: (F.dropout(t, 0.5, generator=g) ** 2), h * 1.0, use_reentrant=True).sum().backward()
    out = checkpoint(lambda t: F.dropout(t, 0.5, seed=seed) ** 2, h * 1.0, use_reentrant=True)  # a pure function
    out.sum().backward()


# -- 3. MC dropout on transformers ----------------------------------------------------------------------------
class _Transformer(torch.nn.Module):
    def __init__(self, layers=1):
        super().__init__()
        self.inp = torch.nn.Linear(4, 16)
        layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.3, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, layers) if layers > 1 else layer
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.enc(self.inp(x)).mean(1))


@pytest.mark.parametrize("layers", [1, 2])  # a layer, and an encoder (its nested-tensor path)
def test_fault3_mc_predict_samples_the_dropout_of_transformers(layers, seed):
    x = torch.randn(6, 5, 4, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    r = dt.mc_predict(_Transformer(layers).eval(), x, samples=8, seed=seed)
    assert float(r.std.max()) > 0 and float(r.mutual_information.max()) > 0

    def make():
        torch.manual_seed(seed)
        return dt.patch(_Transformer(layers), seed=seed).eval()

    model, twin = make(), make()
    was = torch.backends.mha.get_fastpath_enabled()
    r = dt.mc_predict(model, x, samples=8, keep_samples=True)
    assert torch.backends.mha.get_fastpath_enabled() == was  # switched back
    # the passes are training-mode dropout forwards of the stacked batch, as a manual loop with grad on
    with dt.enable_mc_dropout(twin):
        manual = torch.softmax(twin(x.repeat(8, 1, 1)), -1).double().reshape(8, 6, 3)
    assert torch.equal(r.samples, manual.detach()) and float(r.std.max()) > 0
    with dt.enable_mc_dropout(twin), torch.no_grad():  # a manual loop under no_grad samples too
        assert not torch.equal(twin(x), twin(x))
    assert torch.backends.mha.get_fastpath_enabled() == was


def test_fault3_the_fast_path_setting_comes_back_on_error():
    was = torch.backends.mha.get_fastpath_enabled()
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Linear(5, 2))
    with pytest.raises(RuntimeError):
        dt.mc_predict(model, torch.randn(3, 4), samples=2)
    assert torch.backends.mha.get_fastpath_enabled() == was


@pytest.mark.parametrize("user", [True, False])
@pytest.mark.parametrize("order", ["creation", "reverse"])
def test_recheck15_overlapping_handles_share_a_counted_fast_path_switch(user, order, seed):
    """Two handles released in creation order switched the fast path back on while the second
    was active (its transformer stopped sampling) and left it off at the end."""
    mha = torch.backends.mha
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(user)
    try:
        torch.manual_seed(seed)
        m1, m2 = _Transformer().eval(), _Transformer().eval()
        x = torch.randn(4, 5, 4)
        h1 = dt.enable_mc_dropout(m1)
        h2 = dt.enable_mc_dropout(m2)
        first, second = (h1, h2) if order == "creation" else (h2, h1)
        still = m2 if order == "creation" else m1
        assert not mha.get_fastpath_enabled()
        first.restore()
        first.restore()  # idempotent: releases its count once
        assert not mha.get_fastpath_enabled()
        with torch.no_grad():
            assert not torch.equal(still(x), still(x))  # the active handle's model still samples
        with dt.enable_mc_dropout(m1 if still is m2 else m2):  # a third one inside, as mc_predict
            pass
        assert not mha.get_fastpath_enabled()
        second.restore()
        assert mha.get_fastpath_enabled() is user
        with pytest.raises(RuntimeError):  # an error inside a context manager releases its count
            with dt.enable_mc_dropout(m1):
                raise RuntimeError("boom")
        assert mha.get_fastpath_enabled() is user
        dt.mc_predict(m1, x, samples=2)
        assert mha.get_fastpath_enabled() is user
    finally:
        mha.set_fastpath_enabled(was)


# -- 4. patch maps each torch class to its equivalent -------------------------------------------------------
@pytest.mark.parametrize("old,new,shape", [
    (torch.nn.Dropout, dt.Dropout, (4, 50)),
    (torch.nn.Dropout1d, dt.Dropout1d, (4, 50, 6)),
    (torch.nn.Dropout2d, dt.Dropout2d, (4, 50, 3, 2)),
    (torch.nn.Dropout3d, dt.Dropout3d, (4, 50, 2, 2, 2)),
    (torch.nn.AlphaDropout, dt.AlphaDropout, (4, 50)),
])
@pytest.mark.parametrize("inplace", [False, True])
def test_fault4_patch_maps_each_torch_class_to_its_equivalent(old, new, shape, inplace, seed):
    net = torch.nn.Sequential(torch.nn.Identity(), old(0.4, inplace))
    dt.patch(net, seed=seed)
    m = net[1]
    assert type(m) is new and m.p == 0.4 and m.inplace == inplace
    assert net.droplab_patched == (dt.Replacement(("1",), old, new),)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).abs() + 0.5
    y = m(x.clone())
    if len(shape) > 2:  # channels dropped whole, as torch's
        kept = (y != 0).flatten(2)
        assert torch.equal(kept.all(-1), kept.any(-1))
    if old is torch.nn.AlphaDropout:  # SELU's fixed point kept: not zeros
        z = torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        out = m(z)
        assert abs(float(out.mean())) < 0.02 and abs(float(out.var()) - 1) < 0.02  # n = 2e5: 5 sigma ~ 0.011
    # an explicit variant keeps the earlier behaviour: that class for every module
    net = dt.patch(torch.nn.Sequential(old(0.4)), dt.Dropout)
    assert type(net[0]) is dt.Dropout and net[0].p == 0.4


def test_fault4_classes_without_an_equivalent_are_left_with_a_warning_and_a_report():
    class Mine(torch.nn.Dropout):
        def forward(self, x):
            return x

    net = torch.nn.Sequential(torch.nn.FeatureAlphaDropout(0.2), Mine(0.3), torch.nn.Dropout(0.1))
    with pytest.warns(UserWarning) as caught:
        dt.patch(net)
    assert [str(w.message).split(" left")[0] for w in caught] == ["patch: 0: torch.nn.FeatureAlphaDropout",
                                                                  f"patch: 1: {__name__}.{Mine.__qualname__}"]
    assert "droplab has no equivalent for inputs of every rank" in str(caught[0].message)
    assert "AlphaDropout, types=torch.nn.FeatureAlphaDropout, axes=(2, 3, 4))" in str(caught[0].message)
    assert type(net[0]) is torch.nn.FeatureAlphaDropout and type(net[1]) is Mine and type(net[2]) is dt.Dropout
    left = [r for r in net.droplab_patched if r.new is None]
    assert [r.names for r in left] == [("0",), ("1",)] and "whose forward droplab cannot know" in left[1].reason
    # the report's fix works
    dt.patch(net, dt.AlphaDropout, types=torch.nn.FeatureAlphaDropout, axes=(2, 3, 4))
    assert type(net[0]) is dt.AlphaDropout and net[0].axes == (2, 3, 4)


# -- 5. deepcopy leaves the original alone ------------------------------------------------------------------
def _train(seed, snapshots):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), dt.Dropout(0.5, seed=seed), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(seed))
    kept = []
    for _ in range(4):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
        if snapshots:
            kept.append(copy.deepcopy(net))  # a best-model / EMA snapshot at every step
    return net, kept


def test_fault5_deepcopy_snapshots_leave_the_training_run_bit_identical(seed):
    with_snapshots, kept = _train(seed, True)
    without, _ = _train(seed, False)
    assert all(torch.equal(a, b) for a, b in zip(with_snapshots.state_dict().values(), without.state_dict().values()))
    assert with_snapshots[1].counter == without[1].counter == 4
    streams = [k[1].rng.state() for k in kept]
    x = torch.ones(2, 16)
    masks = [with_snapshots[1](x)] + [k[1](x) for k in kept]  # the original and four clones
    assert all(not torch.equal(masks[i], masks[j]) for i in range(5) for j in range(i))
    # the same program makes the same clones
    _, again = _train(seed, True)
    assert [k[1].rng.state() for k in again] == streams


def test_fault5_a_clone_of_a_clone_and_replicas_still_differ(seed):
    d = dt.Dropout(0.5, seed=seed)
    c1 = copy.deepcopy(d)
    c2 = copy.deepcopy(c1)
    x = torch.ones(200)
    outs = [m(x) for m in (d, c1, c2)]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])
    assert not torch.equal(outs[0], outs[2]) and d.counter == 1


# -- 6. vectorised Jacobians ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
def test_fault6_vectorized_jacobians_and_batched_grads_equal_the_loop(name, seed):
    m, shape = _make(name, seed)
    x = _x(shape, seed)

    def f(t):
        m.counter = 0  # one mask for every call
        return m(t)

    loop = torch.autograd.functional.jacobian(f, x)
    torch.testing.assert_close(torch.autograd.functional.jacobian(f, x, vectorize=True), loop, rtol=1e-13, atol=0)
    xr = x.clone().requires_grad_()
    y = f(xr)
    eye = torch.eye(y.numel(), dtype=y.dtype).reshape(-1, *y.shape)
    batched, = torch.autograd.grad(y, xr, eye, is_grads_batched=True, retain_graph=True)
    rows = torch.stack([torch.autograd.grad(y, xr, e, retain_graph=True)[0] for e in eye])
    torch.testing.assert_close(batched, rows, rtol=1e-13, atol=0)


# -- 7. inplace ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape", [(dt.Dropout, (4, 6)), (dt.Dropout1d, (4, 3, 5)), (dt.Dropout2d, (2, 3, 2, 2)),
                                       (dt.Dropout3d, (2, 3, 2, 2, 2)), (dt.AlphaDropout, (4, 6))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fault7_inplace_writes_into_the_input_with_the_same_values_and_gradients(cls, shape, dtype, seed):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).requires_grad_()
    writes = cls is not dt.AlphaDropout  # as torch's module, AlphaDropout stores inplace but ignores it
    outs, grads = [], []
    for inplace in (False, True):
        m = cls(0.4, inplace, seed=seed)
        h = (w * 2).to(dtype)  # a non-leaf, as torch.nn.Dropout(inplace=True) is used
        y = m(h)
        assert (y is h) == (inplace and writes)
        (y.double() ** 2).sum().backward()
        outs.append(y.detach())
        grads.append(w.grad.clone())
        w.grad = None
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    # as torch's: eval and p = 0 return the input itself; a leaf that requires grad is refused
    h = torch.ones(shape)
    assert cls(0.4, True).eval()(h) is h and cls(0.0, True)(h) is h
    if writes:
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            cls(0.4, True)(torch.ones(shape, requires_grad=True))
    else:
        cls(0.4, True)(torch.ones(shape, requires_grad=True))
        torch.nn.AlphaDropout(0.4, True)(torch.ones(shape, requires_grad=True))
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        torch.nn.Dropout(0.4, True)(torch.ones(shape, requires_grad=True))


def test_fault7_inplace_where_torch_takes_it_and_nowhere_else(seed):
    assert repr(dt.Dropout(0.5, True)) == "droplab.Dropout(p=0.5, inplace=True)"
    assert repr(dt.Dropout2d(0.5, inplace=False)) == "droplab.Dropout2d(p=0.5)"
    assert repr(dt.Dropout(0.5, False, inverted=False)) == "droplab.Dropout(p=0.5, inverted=False)"
    h = torch.randn(4, 6) * 1.0
    ref = F.dropout(h.clone(), 0.5, True, False, seed=seed)
    assert F.dropout(h, 0.5, True, True, seed=seed) is h and torch.equal(h, ref)
    for fn, x in ((F.dropout1d, torch.ones(2, 3, 4)), (F.dropout2d, torch.ones(2, 3, 2, 2)),
                  (F.dropout3d, torch.ones(2, 3, 2, 2, 2)), (F.alpha_dropout, torch.ones(3))):
        assert fn(x, 0.5, True, inplace=True, seed=seed) is x
    classic = torch.ones(3)
    assert dt.Dropout(0.25, True, inverted=False).eval()(classic) is classic
    assert torch.equal(classic, torch.full((3,), 0.75))
    h = torch.ones(4, 6)[:, ::2]  # a strided view: written in place, its layout kept
    assert dt.Dropout(0.5, True, seed=seed)(h) is h
    with pytest.raises(TypeError, match=r"Dropout: `inplace` must be True or False; got inplace=3"):
        dt.Dropout(0.5, 3)
    with pytest.raises(TypeError, match=r"Dropout\(\) got multiple values for argument 'inplace'"):
        dt.Dropout(0.5, True, inplace=True)
    with pytest.raises(TypeError, match=r"GaussianDropout\(\) got an unexpected keyword argument 'inplace'"):
        dt.GaussianDropout(0.5, inplace=True)
    with pytest.raises(TypeError, match=r"gaussian_dropout\(\) got an unexpected keyword argument 'inplace'"):
        F.gaussian_dropout(torch.ones(3), 0.5, True, inplace=True)


def test_fault7_inplace_under_vmap_and_grad(seed):
    m = dt.Dropout(0.5, True, seed=seed)
    twin = dt.Dropout(0.5, seed=seed)
    xs = _x((3, 8), seed)
    y = vmap(lambda t: m(t * 1.0), randomness="different")(xs)
    assert torch.equal(y, vmap(twin, randomness="different")(xs))
    g = grad(lambda t: m(t * 1.0).sum())(xs[0])
    assert torch.equal(g, grad(lambda t: twin(t).sum())(xs[0]))


# -- 8. the random state of CUDA's generators ------------------------------------------------------------
def test_fault8_rng_state_carries_cuda_generators_when_cuda_is_in_use(monkeypatch, seed):
    net = torch.nn.Sequential(dt.Dropout(0.5), dt.Dropout(0.5, seed=seed))
    if not torch.cuda.is_available():  # this machine: no CUDA call at all
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", _never)
        monkeypatch.setattr(torch.cuda, "set_rng_state", _never)
        state = dt.get_rng_state(net)
        assert "cuda" not in state and "torch" in state
        dt.set_rng_state(net, {**state, "cuda": [torch.zeros(16, dtype=torch.uint8)]})  # taken on a GPU: loads here
    # a machine with an initialised GPU (CUDA's calls stood in for)
    fake = [torch.arange(16, dtype=torch.uint8)]
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: fake)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: calls.append((s, device)))
    state = dt.get_rng_state(net)
    assert state["cuda"] is fake
    x = torch.ones(100)
    a = net(x)
    dt.set_rng_state(net, state)
    assert torch.equal(net(x), a) and calls == [(fake[0], 0)]
    calls.clear()
    dt.set_rng_state(net, {k: v for k, v in state.items() if k != "cuda"})  # a CPU state loads on a GPU machine
    assert calls == [] and torch.equal(net(x), a)
    only_seeded = torch.nn.Sequential(dt.Dropout(0.5, seed=seed))
    assert "cuda" not in dt.get_rng_state(only_seeded)  # nothing draws from CUDA's generators


def _never(*args, **kwargs):
    raise AssertionError("a CUDA call on a machine without CUDA")


# -- 9. patch's report -----------------------------------------------------------------------------------
def test_fault9_patch_returns_the_model_with_its_report(caplog):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.2))
            self.alias = self.body[1]
            self.chan = torch.nn.Dropout2d(0.3)

    net = Net()
    with caplog.at_level(logging.WARNING):  # nothing at the default level: the report is the return value
        model = dt.patch(net)
    assert model is net and caplog.text == ""
    assert model.droplab_patched == (dt.Replacement(("alias", "body.1"), torch.nn.Dropout, dt.Dropout),
                                     dt.Replacement(("chan",), torch.nn.Dropout2d, dt.Dropout2d))
    assert [str(r) for r in model.droplab_patched] == ["alias = body.1: torch.nn.Dropout -> droplab.torch.Dropout",
                                                       "chan: torch.nn.Dropout2d -> droplab.torch.Dropout2d"]
    again = dt.patch(torch.nn.Sequential(torch.nn.Dropout(0.1)), dt.LockedDropout)
    assert again.droplab_patched == (dt.Replacement(("0",), torch.nn.Dropout, dt.LockedDropout),)


# -- recheck 15: in-place under no_grad returns the input itself; AlphaDropout's module ignores inplace --
@pytest.mark.parametrize("kind", ["leaf", "nonleaf", "parameter", "plain"])
@pytest.mark.parametrize("shape", [(8,), (4, 6, 3, 3)])
def test_recheck15_inplace_under_no_grad_returns_the_input_like_torch(kind, shape):
    def inp():
        if kind == "leaf":
            return torch.ones(shape, requires_grad=True)
        if kind == "parameter":
            return torch.nn.Parameter(torch.ones(shape))
        t = torch.ones(shape, requires_grad=kind == "nonleaf")
        return t * 1.0 if kind == "nonleaf" else t
    for ours, theirs in [(dt.Dropout(0.5, inplace=True), torch.nn.Dropout(0.5, inplace=True)),
                         (lambda t: F.dropout(t, 0.5, True, True), lambda t: torch.nn.functional.dropout(t, 0.5, True, True))]:
        for mod in (ours, theirs):
            w = inp()
            with torch.no_grad():
                v0 = w._version
                r = mod(w)
            assert r is w and bool((w != 1).any()) and w._version > v0
            assert r.requires_grad == w.requires_grad


@pytest.mark.parametrize("cls,droplab_cls,shape", [
    (torch.nn.AlphaDropout, dt.AlphaDropout, (4, 6)),
    (torch.nn.Dropout1d, dt.Dropout1d, (4, 6, 5)),
    (torch.nn.Dropout2d, dt.Dropout2d, (4, 6, 3, 3)),
    (torch.nn.Dropout3d, dt.Dropout3d, (4, 6, 2, 2, 2)),
])
def test_recheck15_module_inplace_writes_into_the_input_exactly_when_torchs_module_does(cls, droplab_cls, shape):
    for mod in (cls(0.5, inplace=True), droplab_cls(0.5, inplace=True)):
        assert mod.inplace is True and "inplace=True" in repr(mod)
        x = torch.ones(shape)
        y = mod(x)
        assert y.shape == x.shape and bool((y != 1).any())
        writes = cls is not torch.nn.AlphaDropout  # torch's AlphaDropout module ignores inplace
        assert (y is x) == writes and bool((x != 1).any()) == writes
    # the functional forms honour inplace, AlphaDropout's too, as torch's
    for fn in (torch.nn.functional.alpha_dropout, F.alpha_dropout):
        x = torch.ones(4, 6)
        assert fn(x, 0.5, True, True) is x and bool((x != 1).any())
