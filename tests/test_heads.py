import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2orl
from helpers import HEADS, ids


@pytest.mark.parametrize("head", HEADS, ids=ids(HEADS))
def test_scalar_output_jit_and_vmap(head):
    outs = jnp.linspace(-1.0, 1.0, 5 * head.n_in).reshape(5, head.n_in)
    grads = jnp.asarray([-2.0, -0.1, 0.0, 0.3, 4.0])
    values = jax.jit(jax.vmap(head))(outs, grads)
    assert values.shape == (5,) and values.dtype == jnp.float32
    np.testing.assert_allclose(values[1], head(outs[1], grads[1]), rtol=1e-6)


def test_head_rules():
    o = jnp.asarray([0.3, -0.5, 2.0, 7.0])
    g = jnp.asarray(-0.25)
    np.testing.assert_allclose(l2orl.LinearHead()(o[:1], g), 0.3, rtol=1e-6)
    np.testing.assert_allclose(l2orl.SignExpHead()(o[:1], g), -np.exp(0.3), rtol=1e-6)
    np.testing.assert_allclose(l2orl.ExpHead()(o[:1], g), np.exp(0.3), rtol=1e-6)
    np.testing.assert_allclose(l2orl.ExpScaleHead()(o[:1], g), -0.25 * np.exp(0.3), rtol=1e-6)
    np.testing.assert_allclose(
        l2orl.GainBiasHead()(o[:3], g), np.exp(0.3) * -0.25 + np.exp(-0.5) * 2.0, rtol=1e-6
    )
    np.testing.assert_allclose(
        l2orl.DirectionMagnitudeHead(exp_mult=0.1, n_in=4)(o, g),
        0.3 * np.exp(0.1 * -0.5),
        rtol=1e-6,
    )
    assert l2orl.SignExpHead()(o[:1], jnp.asarray(0.0)) == 0.0


def test_direction_magnitude_needs_two_outputs():
    with pytest.raises(ValueError, match="n_in must be ≥ 2"):
        l2orl.DirectionMagnitudeHead(n_in=1)


class _UniformNoiseHead(l2orl.AbstractStochasticHead):
    """`o + ξ` with `ξ ~ U(0, 1)` on every coordinate: a stochastic rule the library does not
    ship, to show that a branch needs nothing but the abstract protocol."""

    @property
    def n_in(self) -> int:
        return 1

    def noise(self, grads, context: l2orl.UpdateContext) -> jax.Array:
        n = sum(g.size for g in jax.tree.leaves(grads))
        if context.key is None:
            return jnp.zeros((n,), jnp.float32)
        return jax.random.uniform(context.key, (n,), jnp.float32)

    def __call__(self, out, grad, noise=0.0):
        return out[0] + noise


def _flat(tree) -> jax.Array:
    return jnp.concatenate([x.reshape(-1) for x in jax.tree.leaves(tree)])


def test_a_branch_runs_any_stochastic_head_with_its_noise_as_the_last_input():
    head = _UniformNoiseHead()
    branch = l2orl.Branch(l2orl.Identity(), l2orl.LinearCell(1, 1, key=jax.random.key(3)), head)
    grads = {"a": jnp.asarray([0.1, -0.2, 0.3]), "b": jnp.asarray([[1.0, 2.0]])}
    state = branch.init(grads)
    context = l2orl.UpdateContext(key=jax.random.key(4))
    features, _ = branch.features(grads, state, None, context)
    assert features.shape == (2, 5)
    np.testing.assert_array_equal(features[-1], head.noise(grads, context))
    noisy, _ = branch(grads, state, None, context)
    plain, _ = branch(grads, state, None)
    deterministic, _ = l2orl.Branch(l2orl.Identity(), branch.cell, l2orl.LinearHead())(
        grads, state, None
    )
    np.testing.assert_array_equal(_flat(plain), _flat(deterministic))
    np.testing.assert_allclose(_flat(noisy), _flat(deterministic) + features[-1], rtol=1e-6)
    assert bool(jnp.all(features[-1] > 0))
