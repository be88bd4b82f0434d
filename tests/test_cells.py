import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2orl
from helpers import CELLS, KEY, ids
from l2orl._cells._coordinates import apply_to_coordinates


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("cell", CELLS, ids=ids(CELLS))
def test_shapes_dtypes_and_hidden(cell):
    x = jnp.asarray([0.3, -1.0, 2.0])
    hidden = cell.init_hidden()
    assert all(jnp.all(h == 0) for h in jax.tree.leaves(hidden))
    out, new_hidden = cell(x, hidden)
    assert out.shape == (cell.n_out,) and out.dtype == jnp.float32
    assert jax.tree.map(lambda h: (h.shape, h.dtype), new_hidden) == jax.tree.map(
        lambda h: (h.shape, h.dtype), hidden
    )


@pytest.mark.parametrize("cell", CELLS, ids=ids(CELLS))
def test_jit_and_vmap_over_coordinates(cell):
    xs = jax.random.normal(KEY, (7, cell.n_features))
    hs = jax.tree.map(lambda h: jnp.broadcast_to(h, (7, *h.shape)), cell.init_hidden())
    outs, _ = eqx.filter_jit(lambda c, x, h: jax.vmap(c)(x, h))(cell, xs, hs)
    assert outs.shape == (7, cell.n_out)
    one, _ = cell(xs[3], jax.tree.map(lambda h: h[3], hs))
    np.testing.assert_allclose(outs[3], one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS, ids=ids(CELLS))
def test_cell_is_differentiable_in_its_weights(cell):
    x = jnp.asarray([0.3, -1.0, 2.0])

    def loss(c):
        h = c.init_hidden()
        out, h = c(x, h)
        out, _ = c(x, h)
        return jnp.sum(out**2)

    grads = eqx.filter_grad(loss)(cell)
    norms = [jnp.linalg.norm(g) for g in jax.tree.leaves(grads)]
    assert all(jnp.isfinite(n) for n in norms) and sum(norms) > 0


def test_gru_follows_the_flax_equations():
    cell = l2orl.GRUCell(2, 3, 1, key=KEY)
    cell = eqx.tree_at(
        lambda c: (c.input_bias, c.recurrent_bias),
        cell,
        (0.1 * jnp.ones((3, 3)), -0.2 * jnp.ones(3)),
    )
    x, h = np.asarray([0.5, -1.5]), np.asarray([0.1, -0.3, 0.2])
    wi, bi = np.asarray(cell.input_kernel), np.asarray(cell.input_bias)
    wh, bhn = np.asarray(cell.recurrent_kernel), np.asarray(cell.recurrent_bias)
    r = _sig(wi[0] @ x + bi[0] + wh[0] @ h)
    z = _sig(wi[1] @ x + bi[1] + wh[1] @ h)
    n = np.tanh(wi[2] @ x + bi[2] + r * (wh[2] @ h + bhn))
    h_new = (1 - z) * n + z * h
    out, hidden = cell(jnp.asarray(x, jnp.float32), jnp.asarray(h, jnp.float32))
    np.testing.assert_allclose(hidden, h_new, rtol=1e-5)
    np.testing.assert_allclose(out, np.asarray(cell.readout.weight) @ h_new, rtol=1e-5)


def test_gru_parameter_count_and_init_match_the_reference():
    cell = l2orl.GRUCell(1, 8, 1, key=KEY)
    # flax GRUCell(8) on 1 input: 248, plus Dense(1): 9.
    assert sum(x.size for x in jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))) == 257
    for k in range(3):  # recurrent kernels are orthogonal, biases zero
        w = np.asarray(cell.recurrent_kernel[k])
        np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)
    assert not np.any(cell.input_bias) and not np.any(cell.recurrent_bias)


def test_lstm_follows_its_equations():
    cell = l2orl.LSTMCell(2, 3, 1, activation="tanh", key=KEY)
    x, h, c = np.asarray([0.5, -1.5]), np.asarray([0.1, -0.3, 0.2]), np.asarray([0.4, 0.0, -0.1])
    g = np.asarray(cell.input_kernel) @ x + np.asarray(cell.recurrent_kernel) @ h
    c_new = _sig(g[1]) * c + _sig(g[0]) * np.tanh(g[2])
    h_new = _sig(g[3]) * np.tanh(c_new)
    _, (h_out, c_out) = cell(
        jnp.asarray(x, jnp.float32), (jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32))
    )
    np.testing.assert_allclose(h_out, h_new, rtol=1e-5)
    np.testing.assert_allclose(c_out, c_new, rtol=1e-5)


def test_mlp_and_linear_cells_are_stateless():
    for cell in (l2orl.MLPCell(3, (4,), 2, key=KEY), l2orl.LinearCell(3, 2, key=KEY)):
        assert cell.init_hidden() == ()
    lin = l2orl.LinearCell(3, 2, key=KEY)
    x = jnp.asarray([1.0, 2.0, 3.0])
    np.testing.assert_allclose(lin(x, lin.init_hidden())[0], lin.linear.weight @ x, rtol=1e-6)


def test_ode_cell_one_euler_step_equals_its_vector_field():
    cell = l2orl.ODECell(2, 3, 1, width=5, n_steps=1, solver="euler", key=KEY)
    x, h = jnp.asarray([0.5, -1.0]), jnp.asarray([0.2, 0.1, -0.4])
    _, hidden = cell(x, h)
    np.testing.assert_allclose(hidden, h + cell.vector_field(jnp.asarray(0.0), h, x), rtol=1e-5)


@pytest.mark.slow  # five diffrax solves, each compiled
def test_ode_cell_converges_with_more_steps():
    """Fixed-step solves approach the exact flow: the Heun error shrinks as steps are refined."""
    x, h = jnp.asarray([1.5, -1.0]), jnp.asarray([0.9, -0.8, 0.5])
    solve = lambda n: l2orl.ODECell(2, 3, 1, n_steps=n, solver="heun", key=KEY)(x, h)[1]  # noqa: E731
    exact = l2orl.ODECell(2, 3, 1, n_steps=256, solver="tsit5", key=KEY)(x, h)[1]
    errors = [float(jnp.max(jnp.abs(solve(n) - exact))) for n in (1, 2, 4, 8)]
    assert errors[0] > errors[1] > errors[2] > errors[3]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: l2orl.GRUCell(0, key=KEY), "n_features must be a positive int"),
        (lambda: l2orl.LSTMCell(1, hidden_size=-2, key=KEY), "hidden_size must be a positive int"),
        (lambda: l2orl.MLPCell(1, (4, 0), key=KEY), r"widths\[1\] must be a positive int"),
        (lambda: l2orl.GRUCell(1, activation="swishy", key=KEY), "unknown activation 'swishy'"),
        (lambda: l2orl.ODECell(1, solver="rk45", key=KEY), "unknown ODE solver 'rk45'"),
    ],
)
def test_bad_configuration_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_feature_size_is_caught_by_the_shape_checks():
    cell = l2orl.GRUCell(3, key=KEY)
    with pytest.raises(Exception, match=r"n_features|shape"):
        cell(jnp.ones(4), cell.init_hidden())


# Every cell with blocks that divide nothing evenly; a stateless and a two-state cell also with
# one block that fits exactly and one larger than the 37 coordinates.
# The ODE cell's case compiles diffrax's solver several times, and the LSTM's runs twice
# more below: they run in the slow tier.
BLOCKED = [
    pytest.param(
        cell,
        8,
        marks=[pytest.mark.slow] if isinstance(cell, l2orl.ODECell | l2orl.LSTMCell) else [],
        id=f"{type(cell).__name__}-8",
    )
    for cell in CELLS
] + [
    pytest.param(cell, block, id=f"{type(cell).__name__}-{block}")
    for cell in CELLS
    if isinstance(cell, l2orl.LinearCell | l2orl.LSTMCell)
    for block in (37, 64)
]


@pytest.mark.parametrize(("cell", "block"), BLOCKED)
def test_blocked_backward_equals_autodiff_of_vmap(cell, block):
    """`apply_to_coordinates` (the optimizers' path) = `jax.vmap(cell)` in values and in
    gradients, for blocks that divide the coordinates, overlap at the end, or exceed them;
    alone and vmapped over agents."""
    n = 37
    k_x, k_h, k_o, k_w = jax.random.split(KEY, 4)
    x = jax.random.normal(k_x, (cell.n_features, n))
    template, treedef = jax.tree.flatten(cell.init_hidden())
    hidden = treedef.unflatten(
        [
            jax.random.normal(jax.random.fold_in(k_h, i), (*t.shape, n))
            for i, t in enumerate(template)
        ]
    )
    w_out = jax.random.normal(k_o, (cell.n_out, n))
    w_hidden = jax.tree.map(lambda h: jax.random.normal(k_w, h.shape), hidden)

    def loss(apply, inputs):
        out, new_hidden = apply(*inputs)
        return jnp.sum(w_out * out) + sum(
            jnp.sum(w * h)
            for w, h in zip(jax.tree.leaves(w_hidden), jax.tree.leaves(new_hidden), strict=True)
        )

    def vmapped(c, x, h):
        return jax.vmap(c, in_axes=(-1, -1), out_axes=-1)(x, h)

    def blocked(c, x, h):
        return apply_to_coordinates(c, x, h, block)

    inputs = (cell, x, hidden)
    values = eqx.filter_jit(lambda i: (vmapped(*i), blocked(*i)))(inputs)
    for a, b in zip(*map(jax.tree.leaves, values), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    expected = eqx.filter_jit(eqx.filter_grad(lambda i: loss(vmapped, i)))(inputs)
    got = eqx.filter_jit(eqx.filter_grad(lambda i: loss(blocked, i)))(inputs)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    # Three agents: vmapped over the leading axis of features and hidden, shared weights.
    agents = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a, -a]), (x, hidden))

    def over_agents(apply):
        def total(c, xh):
            return jnp.sum(jax.vmap(lambda x, h: loss(apply, (c, x, h)))(*xh))

        return eqx.filter_jit(eqx.filter_grad(total))(cell, agents)

    for a, b in zip(
        jax.tree.leaves(over_agents(vmapped)), jax.tree.leaves(over_agents(blocked)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
