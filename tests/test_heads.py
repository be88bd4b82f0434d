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
