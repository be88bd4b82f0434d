"""Meta-training a learned optimizer on PPO agents in brax environments (no mocks).

A brax meta-step compiles for minutes on a 2-core CPU (about 330 s for `inverted_pendulum` on
`spring` while the CPU was shared, 440 s with the physics gradient), so these run in the slow
tier: on brax's trivial `fast` env and on `inverted_pendulum` with `spring` physics, the
meta-gradient through the physics.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl

TRACES = []


class Counting(l2orl.AbstractStatelessEstimator):
    """Truncated BPTT that counts how often the meta-step is traced."""

    inner: l2orl.TruncatedBPTT

    def check_optimizer(self, optimizer):
        self.inner.check_optimizer(optimizer)

    def estimate(self, **kwargs):
        TRACES.append(1)
        return self.inner.estimate(**kwargs)


def _task(name: str, physics_gradient: bool) -> l2orl.MetaTask:
    env = rl.BraxEnv(name, episode_length=20, physics_gradient=physics_gradient)
    ppo = rl.PPO(
        n_envs=2,
        rollout_length=4,
        n_epochs=1,
        n_minibatches=2,
        gamma=0.97,
        clip_eps=0.3,
        value_coef=0.25,
        reward_scale=10.0,
        network=rl.NetworkSpec("mlp", (8,), "swish", value_hidden_sizes=(8,)),
    )
    return l2orl.MetaTask(name, ppo, env, grad_clip=1.0)


PIPELINE = l2orl.Pipeline(2, 2)
"""Two agents reset every 2 meta-steps, staggered."""


def _leaves_equal(a, b) -> bool:
    """Two meta-training states equal bit for bit (keys compared by their data)."""
    a, b = (eqx.tree_at(lambda s: s.key, s, jax.random.key_data(s.key)) for s in (a, b))
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fast", "inverted_pendulum"])
def test_ppo_on_brax_compiles_once_is_finite_and_resumes_bit_for_bit(name, tmp_path):
    """Three meta-steps of Optim4RL on two PPO agents (agent 0 resets at meta-steps 0 and 2,
    agent 1 at 1), the meta-gradient through the physics: one trace for all of them, finite
    nonzero meta-gradients; cut after the first checkpoint and resumed, the run ends with the
    same state bit for bit."""
    training = l2orl.TruncatedTraining(
        l2orl.optim4rl(step_size=3e-4, key=jax.random.key(1)),
        (_task(name, physics_gradient=True),),
        PIPELINE,
        estimator=Counting(l2orl.TruncatedBPTT()),
        schedule=l2orl.ConstantTruncation(2),
        meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-3)),
    )
    TRACES.clear()
    run = {"checkpoint_every": 1, "progress": False}
    whole = l2orl.meta_train(training, 3, tmp_path, keep_checkpoints=0, **run)
    assert len(TRACES) == 1  # one compile across meta-steps, resets included
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["meta_step"] for r in records] == [1, 2, 3]
    assert [r[f"{name}/resets"] for r in records] == [1, 1, 1]
    for r in records:
        assert np.isfinite(r["meta_loss"]) and np.isfinite(r["grad_norm"]) and r["grad_norm"] > 0
        assert r["skipped"] == 0 and r["env_steps"] == 2 * (2 + 1) * 2 * 4
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(whole.meta_params))

    for step in (2, 3):  # the run, cut after its first checkpoint
        (tmp_path / "checkpoints" / f"step-00000{step}.l2o").unlink()
    resumed = l2orl.meta_train(training, 3, tmp_path, **run)
    assert len(TRACES) == 1  # the same algorithm in the same process: the same compiled step
    assert _leaves_equal(resumed, whole)


@pytest.mark.slow
def test_the_physics_gradient_changes_the_meta_gradient():
    """The same agents, keys and meta-parameters: with the physics gradient the meta-gradient
    also flows through `spring`'s dynamics, so it differs from the one that stops there; both
    are finite."""

    def meta_gradient(physics_gradient):
        task = _task("inverted_pendulum", physics_gradient)
        optimizer = l2orl.optim4rl(step_size=3e-4, key=jax.random.key(1))
        training = l2orl.TruncatedTraining(optimizer, (task,), PIPELINE)
        agents = training.init(jax.random.key(0)).agents[0]
        grad, *_ = eqx.filter_jit(l2orl.TruncatedBPTT().estimate)(
            loop=l2orl.InnerLoop(task, l2orl.AgentLoss(), 2, 2, PIPELINE.lifetime(2)),
            optimizer=optimizer,
            agents=agents,
            state=None,
            key=jax.random.key(2),
        )
        return np.concatenate([np.ravel(g) for g in jax.tree.leaves(grad)])

    on, off = meta_gradient(True), meta_gradient(False)
    assert np.isfinite(on).all() and np.isfinite(off).all()
    assert np.linalg.norm(off) > 0 and not np.allclose(on, off, rtol=1e-3, atol=0)
