import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
from helpers import OPTIMIZER_IDS, OPTIMIZERS, grads_like, in_slow_tier, params_tree

optimizers = pytest.mark.parametrize("opt", OPTIMIZERS, ids=OPTIMIZER_IDS)


def _shapes_dtypes(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def test_preset_meta_parameter_counts():
    assert l2orl.optim4rl().n_meta_parameters == 514
    # GRU 2→8 (272) + readout 9, and Optim4RL's v-branch (257)
    assert l2orl.optim4rl_scale_free().n_meta_parameters == 538
    # two facts more into each GRU: 2 · 2 · 3 gates · 8
    assert l2orl.PRESETS["Optim4RL-scale-free-context"]().n_meta_parameters == 538 + 96
    assert l2orl.l2lgd2().n_meta_parameters == 281
    assert l2orl.linear_optim().n_meta_parameters == 275
    assert l2orl.star().n_meta_parameters == 207  # MLP 39→4→4→4 (200) + 7 decay offsets
    assert l2orl.open_like().n_meta_parameters == 1603  # GRU 15→16 (1,552) + readout 17·3
    # LSTM 6→16 (1,472) + readout 17·9 (153) + bank 8·(5·8 + 8 + 8·2 + 2 + 5·2) (608)
    assert l2orl.velo_like().n_meta_parameters == 2233


@optimizers
def test_update_shapes_dtypes_and_finite(opt):
    params = params_tree()
    tx = opt.as_optax()
    state = tx.init(params)
    grads = grads_like(params)
    updates, new_state = eqx.filter_jit(tx.update)(grads, state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    assert _shapes_dtypes(updates) == _shapes_dtypes(params)
    assert jax.tree.all(jax.tree.map(lambda u: jnp.all(jnp.isfinite(u)), updates))
    assert _shapes_dtypes(new_state) == _shapes_dtypes(state)


@optimizers
def test_hidden_state_covers_every_coordinate(opt):
    params = params_tree()
    n = sum(p.size for p in jax.tree.leaves(params))  # 0-d leaves included
    state = opt.init(params)
    if isinstance(state, l2orl.HypernetworkState):  # one hidden state per tensor instead
        n = len(jax.tree.leaves(params))
    branches = [state.m, state.v] if isinstance(state, l2orl.MomentRatioState) else [state]
    for branch_state in branches:
        for leaf in jax.tree.leaves(branch_state.hidden):
            assert leaf.shape[-1] == n
            assert not jnp.any(leaf)  # zeros at init


@optimizers
def test_chain_with_clip_and_extra_args_ignored(opt):
    params = params_tree()
    grads = jax.tree.map(lambda g: 30.0 * g, grads_like(params))
    tx = optax.chain(optax.clip(0.01), opt.as_optax())
    state = tx.init(params)
    updates, _ = eqx.filter_jit(
        lambda t, g, s, p: t.update(g, s, p, loss=jnp.ones(()), foo="bar")
    )(tx, grads, state, params)
    # Clipping before the optimizer equals feeding it clipped gradients.
    clipped = jax.tree.map(lambda g: jnp.clip(g, -0.01, 0.01), grads)
    direct = eqx.filter_jit(lambda o, g, p: o.update(g, o.init(p), p)[0])(opt, clipped, params)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-9), updates, direct)
    )


@optimizers
def test_multisteps_accumulates(opt):
    params = params_tree()
    tx = optax.MultiSteps(opt.as_optax(), every_k_schedule=2)
    state = tx.init(params)
    step = eqx.filter_jit(lambda t, g, s, p: t.update(g, s, p))
    grads = grads_like(params)
    first, state = step(tx, grads, state, params)
    assert all(jnp.all(u == 0) for u in jax.tree.leaves(first))
    second, state = step(tx, grads, state, params)
    direct, _ = opt.update(grads, opt.init(params), params)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-9), second, direct)
    )


@optimizers
def test_state_is_stable_under_cond_inside_jit(opt):
    params = params_tree()
    tx = opt.as_optax()
    grads = grads_like(params)

    @eqx.filter_jit
    def maybe_update(t, state, flag):
        return jax.lax.cond(flag, lambda s: t.update(grads, s, params)[1], lambda s: s, state)

    state = tx.init(params)
    stepped = maybe_update(tx, state, jnp.asarray(True))
    kept = maybe_update(tx, stepped, jnp.asarray(False))
    assert _shapes_dtypes(kept) == _shapes_dtypes(state)
    assert eqx.tree_equal(kept, stepped)


@optimizers
def test_dtype_preserved(opt):
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params_tree())
    grads = jax.tree.map(lambda g: g.astype(jnp.bfloat16), grads_like(params_tree()))
    updates, _ = opt.update(grads, opt.init(params), params)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    new_params = optax.apply_updates(params, updates)
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(new_params))


@optimizers
def test_no_retrace_when_meta_parameters_change(opt):
    params = params_tree()
    grads = grads_like(params)
    traces = []

    @eqx.filter_jit
    def step(o, g, s, p):
        traces.append(1)
        return o.update(g, s, p)

    state = opt.init(params)
    step(opt, grads, state, params)
    perturbed = jax.tree.map(lambda x: x + 0.01 if eqx.is_inexact_array(x) else x, opt)
    step(perturbed, grads, state, params)
    assert len(traces) == 1


def test_transforms_of_optimizers_of_one_structure_compile_once():
    """`as_optax()` is made of bound methods: a jitted loop taking the transform as an argument
    traces once for every optimizer of the same structure (as `rl.compare` runs them)."""
    params, traces = params_tree(), []
    grads = grads_like(params)

    @eqx.filter_jit
    def step(tx, g, p):
        traces.append(1)
        return tx.update(g, tx.init(p), p)[0]

    first = step(l2orl.optim4rl(key=jax.random.key(0)).as_optax(), grads, params)
    second = step(l2orl.optim4rl(key=jax.random.key(1)).as_optax(), grads, params)
    assert len(traces) == 1
    pairs = zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True)
    assert any(not jnp.array_equal(a, b) for a, b in pairs)


def test_optim4rl_at_init_is_sign_descent():
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros((32,))}
    grads = grads_like(params)
    grads = jax.tree.map(lambda g: 5.0 * g, grads)  # gradients spread over the clip range ±1
    alpha = 1e-3
    opt = l2orl.optim4rl(step_size=alpha)
    updates, _ = eqx.filter_jit(opt.update)(grads, opt.init(params), params)
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
        np.testing.assert_array_equal(jnp.sign(u), -jnp.sign(g))
        # The magnitude is α·exp(o1 - o2/2) with o1, o2 near 0: within a factor e of α, and
        # α on average in log space (the reference saw 0.76α to 2.5α).
        ratio = jnp.log(jnp.abs(u) / alpha)
        assert jnp.max(jnp.abs(ratio)) < 1.0
        assert abs(float(jnp.mean(ratio))) < 0.5


def _shifted(opt, delta: float):
    return jax.tree.map(lambda x: x + delta if eqx.is_inexact_array(x) else x, opt)


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e2])
def test_scale_free_optim4rl_is_sign_descent_at_init_and_scale_free(scale):
    """Untrained, it steps α·sign(g) at any scale; other weights keep the update unchanged
    when every gradient is multiplied by a constant; with `max_step` no step exceeds
    `max_step·α`."""
    params = {"w": jnp.zeros((8, 4)), "b": jnp.zeros((4,))}
    stream = [grads_like(params, i + 3) for i in range(4)]
    untrained = l2orl.optim4rl_scale_free(step_size=1e-3)

    step = eqx.filter_jit(lambda opt, g, state: opt.update(g, state, params))

    def updates(opt, s):
        state, out = opt.init(params), []
        for g in stream:
            u, state = step(opt, jax.tree.map(lambda x: s * x, g), state)
            out.extend(jax.tree.leaves(u))
        return out

    for u, g in zip(updates(untrained, scale)[::2], stream, strict=True):
        np.testing.assert_allclose(u, -1e-3 * jnp.sign(g["b"]), rtol=1e-5)
    other = _shifted(untrained, -0.3)
    assert not np.allclose(updates(other, 1.0)[1], updates(untrained, 1.0)[1])
    for a, b in zip(updates(other, scale), updates(other, 1.0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3)
    larger = _shifted(l2orl.optim4rl_scale_free(step_size=1e-3, max_step=1.0), 0.3)
    unbounded = _shifted(untrained, 0.3)
    assert max(float(jnp.max(jnp.abs(u))) for u in updates(larger, scale)) <= 1e-3 * (1 + 1e-6)
    assert max(float(jnp.max(jnp.abs(u))) for u in updates(unbounded, scale)) > 1.5e-3


def test_scale_free_optim4rl_with_context_reads_the_loops_facts():
    """Untrained, it is the same sign descent whatever the context; trained, its step changes
    with the training proportion, and plain optax code (no context) reads the facts as 0."""
    params = {"w": jnp.zeros((8, 4))}
    grads = grads_like(params, 3)
    untrained = l2orl.PRESETS["Optim4RL-scale-free-context"](step_size=1e-3)
    trained = _shifted(untrained, 0.3)

    def step(opt, proportion):
        context = None if proportion is None else l2orl.UpdateContext(jnp.float32(proportion))
        return opt.update(grads, opt.init(params), params, context=context)[0]["w"]

    for proportion in (None, 0.0, 1.0):
        np.testing.assert_allclose(step(untrained, proportion), -1e-3 * jnp.sign(grads["w"]))
    assert not np.allclose(step(trained, 0.0), step(trained, 1.0))
    np.testing.assert_array_equal(step(trained, None), step(trained, 0.0))


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e3])
def test_scale_free_optim4rl_with_adams_direction_is_adam_at_init(scale):
    """Untrained, the Adam-direction preset's updates are optax.adam's at every gradient scale
    (to Adam's ε); trained, they differ, and not only by a constant factor."""
    params = {"w": jnp.zeros((8, 4)), "b": jnp.zeros((4,))}
    stream = [jax.tree.map(lambda x: scale * x, grads_like(params, i + 3)) for i in range(6)]
    untrained = l2orl.PRESETS["Optim4RL-scale-free-Adam"](step_size=1e-3)
    assert untrained.n_meta_parameters == l2orl.optim4rl_scale_free().n_meta_parameters

    def updates(opt):
        state, out = opt.init(params), []
        for g in stream:
            u, state = opt.update(g, state, params)
            out.append(jnp.concatenate([x.ravel() for x in jax.tree.leaves(u)]))
        return jnp.stack(out)

    adam = updates(optax.adam(1e-3, eps=1e-8 * scale))
    np.testing.assert_allclose(updates(untrained), adam, rtol=1e-4)
    ratio = updates(_shifted(untrained, 0.3)) / adam
    assert float(jnp.std(ratio)) > 1e-3 * float(jnp.mean(jnp.abs(ratio)))


def test_branch_direction_must_name_a_feature():
    with pytest.raises(ValueError, match="direction=2 is not the index of one of the 2"):
        l2orl.Branch(
            l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9,))),
            l2orl.GRUCell(2, key=jax.random.key(0)),
            l2orl.ExpScaleHead(),
            direction=2,
        )
    with pytest.raises(ValueError, match="direction must be 'sign' or 'adam', got 'adamw'"):
        l2orl.optim4rl_scale_free(direction="adamw")


def test_moment_ratio_equation():
    opt = l2orl.optim4rl(step_size=0.1, eps=1e-3)
    params = {"x": jnp.zeros((6,))}
    grads = {"x": jnp.asarray([-0.5, -0.1, 0.01, 0.2, 0.4, 0.9])}
    updates, _ = opt.update(grads, opt.init(params), params)
    state = opt.init(params)
    m, _ = opt.m_branch(grads, state.m, params)
    v, _ = opt.v_branch(grads, state.v, params)
    np.testing.assert_allclose(updates["x"], -0.1 * m["x"] / np.sqrt(v["x"] + 1e-3), rtol=1e-5)


def test_meta_gradient_flows_through_as_optax_in_scan():
    """TBPTT through K inner steps: eqx.filter_grad matches a central finite difference."""
    target = jnp.asarray([1.0, -2.0, 0.5, 3.0])

    def meta_loss(opt):
        tx = opt.as_optax()
        params = {"x": jnp.zeros(4)}

        def inner(carry, _):
            params, state = carry
            grads = jax.grad(lambda p: jnp.sum((p["x"] - target) ** 2))(params)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(inner, (params, tx.init(params)), length=5)
        return jnp.sum((params["x"] - target) ** 2)

    opt = l2orl.optim4rl(step_size=0.2)
    grads = eqx.filter_jit(eqx.filter_grad(meta_loss))(opt)
    leaf = grads.m_branch.cell.readout.bias
    assert jnp.all(jnp.isfinite(leaf)) and jnp.abs(leaf[0]) > 0
    eps = 1e-2

    def shift(d):
        return eqx.tree_at(
            lambda o: o.m_branch.cell.readout.bias, opt, opt.m_branch.cell.readout.bias + d
        )

    numeric = (meta_loss(shift(eps)) - meta_loss(shift(-eps))) / (2 * eps)
    np.testing.assert_allclose(leaf[0], numeric, rtol=2e-2)
    # Every meta-parameter of both branches receives gradient.
    assert all(jnp.any(g != 0) for g in jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array)))


@optimizers
def test_meta_gradient_is_finite_with_exactly_zero_gradients(opt):
    """Dead units and unused inputs give gradient coordinates that are exactly 0 (as on Catch);
    the meta-gradient through a few updates must stay finite (STAR's Adafactor features once
    made it NaN there)."""
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}

    def loss(p):  # w[1] and b[2] get exactly zero gradients
        return jnp.sum(p["w"][0] ** 2) + jnp.sum((p["b"][:2] - 1.0) ** 2)

    def meta_loss(opt):
        tx = opt.as_optax()
        p, state = params, tx.init(params)
        for _ in range(3):
            updates, state = tx.update(jax.grad(loss)(p), state, p)
            p = optax.apply_updates(p, updates)
        return loss(p)

    grads = eqx.filter_jit(eqx.filter_grad(meta_loss))(opt)
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert jnp.all(jnp.isfinite(g)), jax.tree_util.keystr(path)


@pytest.mark.parametrize("stop", [True, False])
def test_stop_gradient_inputs(stop):
    opt = l2orl.l2lgd2(step_size=0.1, stop_gradient_inputs=stop)
    params = {"x": jnp.ones(3)}
    state = opt.init(params)
    grad_of_input = jax.grad(lambda g: jnp.sum(opt.update({"x": g}, state, params)[0]["x"]))(
        jnp.asarray([0.1, -0.2, 0.3])
    )
    assert bool(jnp.all(grad_of_input == 0)) is stop


def test_star_includes_the_nominal_adam_term():
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
    grads = grads_like(params)
    base = l2orl.star(nominal_step_size=0.0)
    with_nominal = l2orl.star(nominal_step_size=1e-3)
    update = eqx.filter_jit(lambda opt, state: opt.update(grads, state, params))
    u0, _ = update(base, base.init(params))
    u1, state = update(with_nominal, with_nominal.init(params))
    accumulators, accumulated = l2orl.find_part(
        with_nominal.branch.preprocessor, l2orl.AdafacFeatures, state.preprocessor
    )
    nominal = accumulators.nominal_direction(accumulated)
    for a, b, n in zip(
        jax.tree.leaves(u0), jax.tree.leaves(u1), jax.tree.leaves(nominal), strict=True
    ):
        np.testing.assert_allclose(b - a, -1e-3 * np.exp(0.001) * n, rtol=1e-4, atol=1e-9)


def test_optimizer_trains_a_toy_problem_through_optax():
    """Untrained Optim4RL steps along -sign(g): far from the optimum every step goes downhill."""
    tx = optax.chain(optax.clip(1.0), l2orl.optim4rl(step_size=0.05).as_optax())
    params = {"x": jnp.full((8,), 2.0)}
    loss = lambda p: jnp.sum(p["x"] ** 2)  # noqa: E731

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    losses = [loss(params)]
    for _ in range(30):
        params, state = step(params, state)
        losses.append(loss(params))
    assert all(b < a for a, b in itertools.pairwise(losses))


def test_integer_params_raise():
    # Without the test suite's jaxtyping hook, l2orl's own check names the leaf and its dtype.
    with pytest.raises(TypeError, match=r"(?s)steps.*(int32|i32)"):
        l2orl.optim4rl().init({"w": jnp.ones(3), "steps": jnp.zeros((), jnp.int32)})


@pytest.mark.parametrize("name", [in_slow_tier(n, n) for n in sorted(l2orl.PRESETS)])
def test_an_empty_parameter_tree_gets_an_empty_update_as_in_optax(name):
    tx = l2orl.PRESETS[name]().as_optax()
    for empty in ({}, []):
        updates, _ = tx.update(empty, tx.init(empty), empty)
        assert updates == empty == optax.adam(1e-3).update(empty, optax.adam(1e-3).init(empty))[0]


def test_mismatched_pytrees_raise():
    opt = l2orl.linear_optim()
    state = opt.init({"w": jnp.ones((3, 2)), "b": jnp.ones(2)})
    with pytest.raises(
        ValueError, match="the gradients have 6 coordinates but the optimizer state was made for 8"
    ):
        opt.update({"w": jnp.ones((3, 2))}, state)


@pytest.mark.parametrize(
    "make",
    [
        lambda: l2orl.optim4rl(step_size=-1e-3),
        lambda: l2orl.l2lgd2(step_size=0.0),
        lambda: l2orl.star(step_size=-1.0),
        lambda: l2orl.optim4rl(eps=0.0),
    ],
)
def test_non_positive_step_sizes_raise(make):
    with pytest.raises(ValueError, match="must be a positive finite number"):
        make()


def test_preprocessor_cell_mismatch_raises():
    with pytest.raises(
        ValueError, match="gives 2 features but the cell GRUCell expects n_features=1"
    ):
        l2orl.PerCoordinateOptimizer(
            l2orl.SignLog(), l2orl.GRUCell(1, key=jax.random.key(0)), l2orl.ExpScaleHead()
        )
    with pytest.raises(ValueError, match="n_out=1 outputs but the head GainBiasHead reads n_in=3"):
        l2orl.Branch(
            l2orl.Identity(), l2orl.GRUCell(1, key=jax.random.key(0)), l2orl.GainBiasHead()
        )


def test_param_features_need_params():
    with pytest.raises(ValueError, match="reads the parameter values"):
        opt = l2orl.star()
        opt.update({"x": jnp.ones(2)}, opt.init({"x": jnp.ones(2)}))


@optimizers
def test_vmap_over_agents(opt):
    """Several agents, each with its own parameters and optimizer state, in one vmapped update."""
    params = params_tree()
    batch = jax.tree.map(lambda p: jnp.stack([p, p + 1.0, -p]), params)
    grads = jax.tree.map(lambda g: jnp.stack([g, 2 * g, -g]), grads_like(params))
    states = jax.vmap(opt.init)(batch)
    updates, _ = eqx.filter_jit(lambda o, g, s, p: jax.vmap(o.update)(g, s, p))(
        opt, grads, states, batch
    )
    single, _ = opt.update(
        jax.tree.map(lambda g: g[1], grads), opt.init(params), jax.tree.map(lambda p: p[1], batch)
    )
    for ub, us in zip(jax.tree.leaves(updates), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(ub[1], us, rtol=1e-5, atol=1e-9)
