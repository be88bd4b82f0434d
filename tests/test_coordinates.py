"""Truncated BPTT by coordinates: exact at `coordinate_fraction=1`, unbiased below it, and
refused where the meta-gradient is not a sum over coordinates."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2orl
import l2orl.rl as rl
from helpers import KEY, SMALL_NET, toy_optimizer, toy_training
from l2orl._meta._coordinates import stratified_sample
from meta_helpers import QuadraticLearner

N_AGENTS = 4


def _quadratic_task(dim: int = 4, updates: int = 1, **options) -> l2orl.MetaTask:
    return l2orl.MetaTask("quadratic", QuadraticLearner(dim, updates), None, **options)


def _catch_task() -> l2orl.MetaTask:
    learner = rl.A2C(n_envs=2, rollout_length=5, network=SMALL_NET)
    return l2orl.MetaTask("catch", learner, rl.make("Catch"))


def _ppo_task() -> l2orl.MetaTask:
    learner = rl.PPO(n_envs=2, rollout_length=4, n_epochs=1, n_minibatches=2, network=SMALL_NET)
    return l2orl.MetaTask("cartpole", learner, rl.make("CartPole-v1"))


def _agents(optimizer, task, n_agents: int = N_AGENTS) -> l2orl.AgentsState:
    return task.fresh_agents(optimizer, jax.random.split(KEY, n_agents))


def _estimate(estimator, optimizer, task, length, max_length, key=KEY, agents=None):
    agents = _agents(optimizer, task) if agents is None else agents
    loop = l2orl.InnerLoop(task, l2orl.AgentLoss(), length, max_length, 1000)
    return eqx.filter_jit(estimator.estimate)(
        loop=loop, optimizer=optimizer, agents=agents, state=None, key=key
    )


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


CASES = {
    # the per-coordinate toy rule (a stateless cell) behind an element-wise clip and an
    # update scale, 2 of 4 inner updates run (the rest masked)
    "toy-clip-scale-masked": lambda: (
        toy_optimizer(),
        _quadratic_task(grad_clip=0.5, update_scale=0.7),
        jnp.int32(2),
        4,
    ),
    # Optim4RL's two GRUs on the quadratic
    "optim4rl-quadratic": lambda: (l2orl.optim4rl(0.1), _quadratic_task(dim=6), 3, 3),
    # two optimizer updates per inner update (as PPO's minibatches), 1 of 2 inner updates run
    "optim4rl-quadratic-2-per-step-masked": lambda: (
        l2orl.optim4rl(0.1),
        _quadratic_task(dim=6, updates=2),
        jnp.int32(1),
        2,
    ),
    # Optim4RL on Catch A2C agents
    "optim4rl-catch": lambda: (l2orl.optim4rl(), _catch_task(), 3, 3),
    # Optim4RL on PPO agents, 2 optimizer updates per inner update (2 minibatches), 1 of 2
    # inner updates run
    "optim4rl-ppo-masked": lambda: (l2orl.optim4rl(), _ppo_task(), jnp.int32(1), 2),
}
RL_CASES = ("optim4rl-catch", "optim4rl-ppo-masked")
"""The cases with RL learners: the quadratic's cases check the same arithmetic in a fraction
of the compile time, so these run in the slow tier."""
SLOW_CHUNKS = {
    ("optim4rl-quadratic", None),
    ("optim4rl-quadratic", 2),
    ("optim4rl-quadratic-2-per-step-masked", None),
}
"""In the default suite Optim4RL's quadratic runs once, masked, in chunks of 2 (the toy rule
covers all agents at once, unmasked); its other cases run in the slow tier."""


@pytest.mark.parametrize(
    ("case", "chunk"),
    [
        pytest.param(
            case,
            chunk,
            id=f"{'all-agents' if chunk is None else 'chunks-of-2'}-{case}",
            marks=[pytest.mark.slow] if case in RL_CASES or (case, chunk) in SLOW_CHUNKS else [],
        )
        for case in sorted(CASES)
        for chunk in (None, 2)
    ],
)
def test_all_coordinates_equal_autodiff_through_the_unroll(case, chunk):
    """`coordinate_fraction=1` gives autodiff's meta-gradient (float32 rounding), meta-loss
    and advanced agents, on the same rollouts."""
    optimizer, task, length, max_length = CASES[case]()
    exact = _estimate(
        l2orl.TruncatedBPTT(agents_per_chunk=chunk), optimizer, task, length, max_length
    )
    by_coordinates = _estimate(
        l2orl.TruncatedBPTT(agents_per_chunk=chunk, coordinate_fraction=1.0),
        optimizer,
        task,
        length,
        max_length,
    )
    a, b = _flat(exact[0]), _flat(by_coordinates[0])
    assert np.linalg.norm(a) > 0
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * np.abs(a).max())
    for x, y in zip(jax.tree.leaves(exact[1:]), jax.tree.leaves(by_coordinates[1:]), strict=True):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-6)


def test_a_sampled_fraction_is_unbiased():
    """The mean of `N = 400` estimates at `coordinate_fraction=1/8` (each a fresh draw of 128
    of 1024 coordinates per agent, on the same noise-free unrolls) is the exact meta-gradient
    within 5 standard errors of that mean (per meta-parameter, the standard error estimated
    from the draws' own spread; under a normal approximation a correct estimator fails this
    for any of Optim4RL's 514 meta-parameters with probability below 1e-3), while single draws
    do differ from it."""
    optimizer, task = l2orl.optim4rl(0.1), _quadratic_task(dim=1024)
    agents = _agents(optimizer, task, n_agents=2)
    exact = _flat(_estimate(l2orl.TruncatedBPTT(), optimizer, task, 3, 3, agents=agents)[0])
    sampled = l2orl.TruncatedBPTT(coordinate_fraction=1 / 8)

    @jax.jit
    @jax.vmap
    def draw(key):
        return _estimate(sampled, optimizer, task, 3, 3, key=key, agents=agents)[0]

    batched = draw(jax.random.split(KEY, 400))
    draws = np.stack([_flat(jax.tree.map(lambda x, i=i: x[i], batched)) for i in range(400)])
    mean, standard_error = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    assert np.abs(draws[0] - exact).max() > 0.01 * np.abs(exact).max()
    assert np.all(np.abs(mean - exact) <= 5 * standard_error + 1e-6 * np.abs(exact).max())


def test_stratified_sample_draws_one_coordinate_per_stratum():
    """Per leaf, `max(ceil(p·n), min(n, 64))` indices inside the leaf, one per contiguous
    stratum, weights the strata's sizes (summing to `n`); `p = 1` is every coordinate once with
    weight 1."""
    sizes = (10, 3, 300, 1000)
    sample = stratified_sample(KEY, sizes, 0.125)
    index, weight = np.asarray(sample.index), np.asarray(sample.weight)
    counts = [10, 3, 64, 125]  # small tensors whole, at least MIN_PER_TENSOR = 64 of others
    assert len(index) == sum(counts)
    offsets = np.cumsum((0, *sizes))
    starts = np.cumsum((0, *counts))
    for leaf, (n, m) in enumerate(zip(sizes, counts, strict=True)):
        part = index[starts[leaf] : starts[leaf + 1]] - offsets[leaf]
        bounds = (np.arange(m + 1) * n) // m
        assert np.all((part >= bounds[:-1]) & (part < bounds[1:]))
        assert weight[starts[leaf] : starts[leaf + 1]].sum() == n
    full = stratified_sample(KEY, sizes, 1.0)
    np.testing.assert_array_equal(full.index, np.arange(sum(sizes)))
    np.testing.assert_array_equal(full.weight, np.ones(sum(sizes)))


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (lambda: l2orl.star(), "NominalStepOptimizer is not one"),
        (lambda: l2orl.optim4rl(stop_gradient_inputs=False), "stop_gradient_inputs=False"),
        (
            lambda: l2orl.PerCoordinateOptimizer(
                l2orl.AdafacFeatures(), l2orl.LinearCell(26, key=KEY), l2orl.LinearHead()
            ),
            r"preprocessors \['AdafacFeatures'\] hold",
        ),
    ],
    ids=["coupled-state", "inputs-carry-gradient", "meta-parameterised-preprocessor"],
)
def test_optimizers_outside_the_premise_are_refused(optimizer, message):
    """When a coordinate's update can depend on the meta-parameters through other
    coordinates, the coordinate route refuses (when the trainer is made) instead of returning
    a biased gradient; autodiff through the unroll accepts the same optimizer."""
    with pytest.raises(ValueError, match=message):
        toy_training(
            2, optimizer=optimizer(), estimator=l2orl.TruncatedBPTT(coordinate_fraction=0.5)
        )
    toy_training(2, optimizer=optimizer(), estimator=l2orl.TruncatedBPTT())


def test_an_env_with_transition_gradients_is_refused():
    """A brax env with `physics_gradient` carries derivatives in its states, so the meta-loss
    depends on the meta-parameters through more than `θ_K`: the coordinate route refuses."""
    learner = rl.PPO(n_envs=1, rollout_length=2, n_epochs=1, n_minibatches=1, network=SMALL_NET)
    env = rl.make("brax:fast", physics_gradient=True)
    task = l2orl.MetaTask("fast", learner, env)
    optimizer, estimator = l2orl.optim4rl(), l2orl.TruncatedBPTT(coordinate_fraction=0.5)
    agents = jax.eval_shape(lambda: _agents(optimizer, task, n_agents=2))  # no compile
    loop = l2orl.InnerLoop(task, l2orl.AgentLoss(), 1, 1, 1000)

    def estimate(agents):
        return estimator.estimate(
            loop=loop, optimizer=optimizer, agents=agents, state=None, key=KEY
        )

    with pytest.raises(ValueError, match=r"task 'fast'.* use coordinate_fraction=None"):
        jax.eval_shape(estimate, agents)  # refused when traced, before any compile


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"coordinate_fraction": 0.0}, r"coordinate_fraction must be in \(0, 1\], got 0.0"),
        ({"coordinate_fraction": 1.5}, r"coordinate_fraction must be in \(0, 1\], got 1.5"),
        ({"coordinate_fraction": 0.5, "remat": True}, "never differentiates through the unroll"),
    ],
)
def test_bad_coordinate_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        l2orl.TruncatedBPTT(**options)


def test_a_resumed_run_by_coordinates_is_bit_identical(tmp_path):
    """Stopped after 2 meta-steps and resumed to 4: the same meta-parameters, bit for bit, as
    4 meta-steps in one go (the samples are drawn from the checkpointed key)."""
    training = toy_training(
        4,
        tasks=(_quadratic_task(dim=64),),
        estimator=l2orl.TruncatedBPTT(coordinate_fraction=0.25),
        schedule=l2orl.ConstantTruncation(2),
    )
    whole = l2orl.meta_train(training, 4, tmp_path / "whole", progress=False)
    l2orl.meta_train(training, 2, tmp_path / "resumed", checkpoint_every=1, progress=False)
    resumed = l2orl.meta_train(training, 4, tmp_path / "resumed", progress=False)
    pairs = zip(
        jax.tree.leaves(whole.meta_params), jax.tree.leaves(resumed.meta_params), strict=True
    )
    assert all(np.array_equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("make", [l2orl.optim4rl, l2orl.l2lgd2, l2orl.linear_optim])
def test_a_coordinate_step_on_a_subset_is_the_full_step_there(make):
    """The premise, per coordinate-wise preset: `coordinate_update` is `update` (plus the
    inputs), and `coordinate_step` on any subset of coordinates (their inputs and hidden
    states) gives exactly the full step's updates and hidden states of that subset."""
    optimizer = make()
    assert issubclass(type(optimizer), l2orl.AbstractCoordinatewiseOptimizer)
    params = {"w": jnp.ones((5, 7)), "b": jnp.zeros((7,))}
    grads = jax.tree.map(lambda p: 0.1 * jnp.cos(jnp.arange(p.size).reshape(p.shape)), params)
    state = optimizer.update(grads, optimizer.init(params), params)[1]  # hidden state ≠ 0
    new, new_state, inputs = optimizer.coordinate_update(grads, state, params)
    expected, expected_state = optimizer.update(grads, state, params)
    assert jax.tree.all(
        jax.tree.map(jnp.array_equal, (new, new_state), (expected, expected_state))
    )
    if make is l2orl.optim4rl:
        assert type(inputs) is l2orl.MomentRatioInputs
    subset = jnp.asarray([41, 3, 17, 0])
    take = lambda x: x[..., subset]  # noqa: E731
    delta, hidden = optimizer.coordinate_step(
        jax.tree.map(take, inputs), jax.tree.map(take, optimizer.hidden(state))
    )
    flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(new)])
    np.testing.assert_array_equal(delta, flat[subset])
    for a, b in zip(
        jax.tree.leaves(hidden),
        jax.tree.leaves(jax.tree.map(take, optimizer.hidden(new_state))),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
