"""Registries of every part, so each test covers every preprocessor, cell, head and optimizer."""

import jax
import jax.numpy as jnp

import l2orl

KEY = jax.random.key(0)


def params_tree() -> dict:
    """A small parameter pytree with a matrix, a vector, a 0-d leaf and a nested 3-d leaf."""
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    return {
        "w": jax.random.normal(k1, (3, 4)),
        "b": jnp.zeros((4,)),
        "scale": jnp.asarray(0.5),
        "nested": [jax.random.normal(k2, (2, 2, 3))],
        "v": jax.random.normal(k3, (5,)),
    }


def grads_like(params: dict, seed: int = 2) -> dict:
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return treedef.unflatten(
        [0.1 * jax.random.normal(k, jnp.shape(p)) for k, p in zip(keys, leaves, strict=True)]
    )


PREPROCESSORS = [
    l2orl.Identity(),
    l2orl.Square(),
    l2orl.Clip(0.05),
    l2orl.SignLog(),
    l2orl.ParamValue(),
    l2orl.Momentum((0.5, 0.9)),
    l2orl.TimeFeatures((1.0, 10.0)),
    l2orl.RMSNormalize(l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9,)))),
    l2orl.Concatenate(l2orl.Identity(), l2orl.Square(), l2orl.TimeFeatures()),
    l2orl.AdafacFeatures(),
]


def make_cells(n_features: int, key=KEY) -> list:
    return [
        l2orl.LinearCell(n_features, 2, key=key),
        l2orl.MLPCell(n_features, (8, 8), 2, key=key),
        l2orl.GRUCell(n_features, 4, 2, key=key),
        l2orl.LSTMCell(n_features, 4, 2, key=key),
        l2orl.ODECell(n_features, 4, 2, width=8, n_steps=3, key=key),
    ]


CELLS = make_cells(3)

HEADS = [
    l2orl.LinearHead(),
    l2orl.SignExpHead(),
    l2orl.ExpHead(),
    l2orl.ExpScaleHead(),
    l2orl.GainBiasHead(),
    l2orl.DirectionMagnitudeHead(),
]


def _composed() -> list:
    k1, k2, k3 = jax.random.split(KEY, 3)
    m_in = l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9, 0.99)))
    return [
        l2orl.MomentRatioOptimizer(
            m_branch=l2orl.Branch(m_in, l2orl.LSTMCell(3, key=k1), l2orl.SignExpHead()),
            v_branch=l2orl.Branch(l2orl.Square(), l2orl.GRUCell(1, key=k2), l2orl.ExpHead()),
        ),
        l2orl.PerCoordinateOptimizer(
            l2orl.RMSNormalize(l2orl.Concatenate(l2orl.Identity(), l2orl.ParamValue())),
            l2orl.ODECell(2, 4, n_out=2, width=8, n_steps=2, key=k3),
            l2orl.DirectionMagnitudeHead(),
            step_size=1e-2,
        ),
        l2orl.PerCoordinateOptimizer(
            l2orl.Concatenate(l2orl.SignLog(), l2orl.TimeFeatures((10.0, 100.0))),
            l2orl.MLPCell(4, (8,), 1, key=k3),
            l2orl.ExpScaleHead(),
        ),
    ]


OPTIMIZERS = [l2orl.Optim4RL(), l2orl.L2LGD2(), l2orl.LinearOptim(), l2orl.STAR(), *_composed()]
OPTIMIZER_IDS = ["Optim4RL", "L2LGD2", "LinearOptim", "STAR", "LSTM-Optim4RL", "ODE", "MLP"]


def ids(objects: list) -> list[str]:
    return [type(o).__name__ for o in objects]
