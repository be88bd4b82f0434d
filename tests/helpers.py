"""Registries of every part, so each test covers every preprocessor, cell, head and optimizer."""

import jax
import jax.numpy as jnp
import pytest

import l2orl
import l2orl.rl as rl
from meta_helpers import QuadraticLearner

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
    l2orl.Momentum((0.9,), debias=True),
    l2orl.TimeFeatures((1.0, 10.0)),
    l2orl.RMSNormalize(l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9,)))),
    l2orl.ScaleFree(l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9,)))),
    l2orl.ScaleFree(l2orl.Square(), degree=2),
    l2orl.Concatenate(l2orl.Identity(), l2orl.Square(), l2orl.TimeFeatures()),
    l2orl.AdafacFeatures(),
    l2orl.ContextFeatures(),
    l2orl.TensorFeatures(),
    l2orl.TensorFeatures(role_source="paths"),
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
    l2orl.NoisyHead(l2orl.GainBiasHead()),
    l2orl.NoisyHead(l2orl.LinearHead(), ("actor", "critic"), role_source="paths"),
]


def _composed() -> list:
    k1, k2, k3 = jax.random.split(KEY, 3)
    m_in = l2orl.Concatenate(l2orl.Identity(), l2orl.Momentum((0.9, 0.99)))
    return [
        l2orl.MomentRatioOptimizer(
            m_branch=l2orl.Branch(m_in, l2orl.LSTMCell(3, key=k1), l2orl.SignExpHead()),
            v_branch=l2orl.Branch(l2orl.Square(), l2orl.GRUCell(1, key=k2), l2orl.ExpHead()),
        ),
        in_slow_tier(
            "ODE",
            l2orl.PerCoordinateOptimizer(
                l2orl.RMSNormalize(l2orl.Concatenate(l2orl.Identity(), l2orl.ParamValue())),
                l2orl.ODECell(2, 4, n_out=2, width=8, n_steps=2, key=k3),
                l2orl.DirectionMagnitudeHead(),
                step_size=1e-2,
            ),
        ),
        l2orl.PerCoordinateOptimizer(
            l2orl.Concatenate(l2orl.SignLog(), l2orl.TimeFeatures((10.0, 100.0))),
            l2orl.MLPCell(4, (8,), 1, key=k3),
            l2orl.ExpScaleHead(),
        ),
    ]


# The optimizers slowest to compile run every registry test in the slow tier; the default
# suite checks each in tests of its own (the rich presets in tests/test_context.py, STAR in
# tests/test_optimizers.py, the ODE cell in tests/test_cells.py).
SLOW_TIER_OPTIMIZERS = ("OPEN-like", "VeLO-like", "STAR", "ODE")


def in_slow_tier(name: str, value):
    """`value` as a parameter that runs in the slow tier when `name` is one of
    `SLOW_TIER_OPTIMIZERS`."""
    return pytest.param(value, marks=pytest.mark.slow) if name in SLOW_TIER_OPTIMIZERS else value


OPTIMIZERS = [
    l2orl.optim4rl(),
    l2orl.optim4rl_scale_free(),
    l2orl.optim4rl_scale_free(direction="adam"),
    l2orl.l2lgd2(),
    l2orl.linear_optim(),
    in_slow_tier("STAR", l2orl.star()),
    in_slow_tier("OPEN-like", l2orl.open_like()),
    in_slow_tier("VeLO-like", l2orl.velo_like()),
    *_composed(),
]
OPTIMIZER_IDS = [
    "Optim4RL",
    "Optim4RL-scale-free",
    "Optim4RL-scale-free-Adam",
    "L2LGD2",
    "LinearOptim",
    "STAR",
    "OPEN-like",
    "VeLO-like",
    "LSTM-Optim4RL",
    "ODE",
    "MLP",
]


def ids(objects: list) -> list[str]:
    return [type(o).__name__ for o in objects]


# --- meta-training strategies, learners and envs -------------------------------------------


def toy_optimizer() -> l2orl.PerCoordinateOptimizer:
    """A per-coordinate rule with 2 meta-parameters: Δθ = -0.1·exp(w·clip(g, ±1) + b)·g."""
    return l2orl.PerCoordinateOptimizer(
        l2orl.Clip(1.0), l2orl.LinearCell(1, 1, key=KEY), l2orl.ExpScaleHead(), step_size=0.1
    )


def toy_task(name: str = "toy") -> l2orl.MetaTask:
    return l2orl.MetaTask(name, QuadraticLearner(), None)


def toy_training(
    n_agents: int, kind: str = "none", reset_interval: int = 1000, **kwargs
) -> l2orl.TruncatedTraining:
    """Truncated training of `toy_optimizer` on `toy_task`, `n_agents` in a pipeline of
    `kind`; `kwargs` go to `TruncatedTraining` (`tasks` and `optimizer` among them)."""
    settings = {"optimizer": toy_optimizer(), "tasks": (toy_task(),)} | kwargs
    return l2orl.TruncatedTraining(
        pipeline=l2orl.Pipeline(n_agents, reset_interval, kind), **settings
    )


def toy_loop(
    task: l2orl.MetaTask | None = None,
    meta_loss: l2orl.AbstractMetaLoss | None = None,
    length: int = 3,
    lifetime: int = 1000,
) -> l2orl.InnerLoop:
    """An inner loop of `length` updates on `task` (the toy's by default) scored by
    `meta_loss` (`AgentLoss()`)."""
    task = toy_task() if task is None else task
    meta_loss = l2orl.AgentLoss() if meta_loss is None else meta_loss
    return l2orl.InnerLoop(task, meta_loss, length, length, lifetime)


ESTIMATORS = [
    # (estimator, a meta-loss it accepts)
    (l2orl.TruncatedBPTT(), l2orl.AgentLoss()),
    (l2orl.TruncatedBPTT(agents_per_chunk=2), l2orl.AgentLoss()),
    (l2orl.TruncatedBPTT(remat=True), l2orl.AgentLoss()),
    (l2orl.TruncatedBPTT(coordinate_fraction=0.5), l2orl.AgentLoss()),
    (l2orl.TruncatedES(), l2orl.UnrollReturn()),
    (l2orl.PES(), l2orl.AgentLoss()),
    (l2orl.TruncatedES(fitness_shaping="centered_ranks"), l2orl.UnrollReturn()),
    (l2orl.PES(fitness_shaping="z_score"), l2orl.AgentLoss()),
]
ESTIMATOR_IDS = [
    "TBPTT",
    "TBPTT-chunks",
    "TBPTT-remat",
    "TBPTT-coordinates",
    "TruncatedES",
    "PES",
    "TruncatedES-ranks",
    "PES-zscore",
]

SEARCH_STRATEGIES = [
    l2orl.AntitheticES(pairs=2, std=0.05),
    l2orl.EvosaxStrategy("Open_ES", population_size=4, std=0.05),
    l2orl.EvosaxStrategy("SNES", population_size=4, std=0.05),
]
"""An instance of every search strategy (evosax's, by two of its algorithms)."""

META_LOSSES = [
    l2orl.AgentLoss(),
    l2orl.UnrollReturn(),
    l2orl.LifetimeReturn(0.5),
    l2orl.FreshRolloutLoss(4),
]


def meta_loss_task(meta_loss: l2orl.AbstractMetaLoss) -> l2orl.MetaTask:
    """A one-agent task `meta_loss` can score: the toy, or Catch where it needs an
    actor-critic learner."""
    if not isinstance(meta_loss, l2orl.FreshRolloutLoss):
        return toy_task()
    learner = rl.A2C(n_envs=1, rollout_length=5, network=rl.NetworkSpec("mlp", (16,), "relu"))
    return l2orl.MetaTask("catch", learner, rl.make("Catch"))


SCHEDULES = [
    l2orl.ConstantTruncation(3),
    l2orl.LogUniformTruncation(1, 6),
    l2orl.CurriculumTruncation(2, 5, 10),
]

SMALL_NET = rl.NetworkSpec("mlp", (16,), "relu")
LEARNERS = [
    # (learner, the env name it acts in, or None)
    (rl.A2C(n_envs=2, rollout_length=5, network=SMALL_NET), "Catch"),
    (rl.PPO(n_envs=2, rollout_length=8, n_minibatches=2, n_epochs=2), "CartPole-v1"),
    (QuadraticLearner(), None),
]

ENVS = ["small_dense_short", "big_sparse_long", "Catch", "CartPole-v1", "brax:inverted_pendulum"]
"""A name of every env family (brax's is made in test_brax_env only: it loads brax)."""
