import dataclasses
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl

FLAT = Path(__file__).resolve().parent / "flat_recipes"
"""The flat recipes of `examples/` as they were before the nested form, and `expected.json`:
what the flat-form `MetaTrainConfig` built from each of them, from each shipped
optimizer's recorded settings and from a few more flat dicts (module names without their
module path, the meta-optimizer's first three updates on a probe)."""

EXPECTED = json.loads((FLAT / "expected.json").read_text())


def _short(tree):
    """A description with each class named by its name alone."""
    if isinstance(tree, dict):
        return {
            k: v.split(":")[-1] if k == "module" and isinstance(v, str) else _short(v)
            for k, v in tree.items()
        }
    return [_short(v) for v in tree] if isinstance(tree, list) else tree


def _within(recorded, built, where=""):
    """Every setting `recorded` holds has its value in `built` (which may hold settings
    added since, at their defaults)."""
    if isinstance(recorded, dict):
        assert isinstance(built, dict), where
        for key, value in recorded.items():
            assert key in built, f"{where}.{key}"
            _within(value, built[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(built, list) and len(built) == len(recorded), where
        for i, (r, b) in enumerate(zip(recorded, built, strict=True)):
            _within(r, b, f"{where}[{i}]")
    else:
        assert recorded == built, f"{where}: {recorded!r} recorded, {built!r} built"


def _probe(tx: optax.GradientTransformation) -> list:
    params = {"a": jnp.array([0.5, -2.0, 3.0]), "b": jnp.array(1.5)}
    grads = {"a": jnp.array([2.0, -0.3, 0.01]), "b": jnp.array(-5.0)}
    state, updates = tx.init(params), []
    for _ in range(3):
        update, state = tx.update(grads, state, params)
        updates.append([np.asarray(x).tolist() for x in jax.tree.leaves(update)])
    return updates


def _source(case: str):
    if case.startswith("pretrained:"):
        return l2orl.pretrained_manifest(case.removeprefix("pretrained:"))["config"]["settings"]
    return EXPECTED[case]["flat"] if case.startswith("flat:") else FLAT / case


def test_defaults_are_the_reference_catch_recipe():
    config = l2orl.MetaTrainConfig()
    algorithm = config.make_algorithm()
    assert type(algorithm) is l2orl.TruncatedTraining
    assert [t.name for t in algorithm.tasks] == ["Catch"]
    assert algorithm.pipeline == l2orl.Pipeline(64, 32, "staggered")
    assert algorithm.tasks[0].learner.n_envs == 1  # single-env agents
    assert algorithm.estimator == l2orl.TruncatedBPTT(coordinate_fraction=1 / 16)
    assert algorithm.meta_loss == l2orl.AgentLoss()
    assert algorithm.schedule == l2orl.ConstantTruncation(4)
    assert algorithm.optimizer.n_meta_parameters == 514
    reference = optax.chain(optax.clip(1.0), optax.adam(3e-3))
    assert _probe(algorithm.meta_optimizer) == _probe(reference)
    assert config.run.meta_steps == 78 and config.compiler_options() is None


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_flat_form_builds_what_it_built(case):
    """Each example recipe, each shipped optimizer's recorded settings and a few more flat
    dicts build the same algorithm as the flat-form config did."""
    expected = EXPECTED[case]
    config = l2orl.MetaTrainConfig.from_json(_source(case))
    algorithm = config.make_algorithm()
    optimizer = algorithm.optimizer
    _within(expected["optimizer"], _short(l2orl.describe(optimizer)))
    leaves = jax.tree.leaves(eqx.filter(optimizer, eqx.is_inexact_array))
    # The same initial meta-parameters: their total to float rounding (XLA's optimization
    # level changes the last bits of the initialisation's arithmetic).
    total = sum(float(jnp.sum(jnp.abs(x))) for x in leaves)
    assert total == pytest.approx(expected["optimizer_sum"], rel=1e-6)
    assert len(algorithm.tasks) == len(expected["tasks"])
    for task, recorded in zip(algorithm.tasks, expected["tasks"], strict=True):
        built = {
            "name": task.name,
            "env": task.env.name if hasattr(task.env, "name") else type(task.env).__name__,
            "learner": _short(l2orl.describe(task.learner)),
            "grad_clip": task.grad_clip,
            "update_scale": task.update_scale,
            "reward_scale": getattr(task.env, "reward_scale", None),
            "physics_gradient": getattr(task.env, "physics_gradient", None),
        }
        _within(recorded, json.loads(json.dumps(built)))
    for part in ("pipeline", "estimator", "meta_loss", "schedule"):
        _within(expected[part], _short(l2orl.describe(getattr(algorithm, part))), part)
    assert algorithm.task_normalize == expected["task_normalize"]
    assert _probe(algorithm.meta_optimizer) == expected["meta_optimizer_probe"]
    assert config.compiler_options() == expected["compiler_options"]
    run = dataclasses.asdict(config.run) | {
        "eval_seeds": config.evaluation.seeds,
        "eval_updates": config.evaluation.updates,
    }
    assert {k: run[k] for k in run if k in expected} == {k: expected[k] for k in run}


@pytest.mark.parametrize("name", sorted(l2orl.PRETRAINED))
def test_shipped_optimizers_settings_build_the_run_that_made_them(name):
    """The recorded settings build the parts the run itself recorded."""
    recorded = _short(l2orl.pretrained_manifest(name)["config"])
    algorithm = l2orl.MetaTrainConfig.from_json(recorded["settings"]).make_algorithm()
    for part in ("estimator", "meta_loss", "schedule"):
        _within(recorded[part], _short(l2orl.describe(getattr(algorithm, part))), part)
    (task,) = recorded["tasks"]
    _within(task["pipeline"], _short(l2orl.describe(algorithm.pipeline)))
    _within(task["learner"], _short(l2orl.describe(algorithm.tasks[0].learner)))
    assert (algorithm.tasks[0].name, algorithm.tasks[0].grad_clip) == (task["name"], 1.0)


@pytest.mark.parametrize("recipe", sorted(FLAT.glob("pretrain_*.json")), ids=lambda p: p.name)
def test_nested_json_round_trips(recipe, tmp_path):
    config = l2orl.MetaTrainConfig.from_json(recipe)
    data = config.to_json()
    assert list(data) == ["optimizer", "tasks", "algorithm", "meta_loss", "run", "evaluation"]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    assert l2orl.MetaTrainConfig.from_json(path) == config
    assert l2orl.MetaTrainConfig.from_json(json.loads(json.dumps(data))).to_json() == data


@pytest.mark.parametrize("recipe", sorted(FLAT.glob("pretrain_*.json")), ids=lambda p: p.name)
def test_the_shipped_recipes_are_the_flat_ones(recipe):
    """`examples/`'s recipes (wherever they now live there) read as they read flat."""
    (shipped,) = Path(__file__).resolve().parents[1].glob(f"examples/**/{recipe.name}")
    assert l2orl.MetaTrainConfig.from_json(shipped) == l2orl.MetaTrainConfig.from_json(recipe)


def test_the_nested_shape():
    config = l2orl.MetaTrainConfig.from_json(FLAT / "pretrain_gridworld.json")
    data = config.to_json()
    assert data["tasks"][0] == {
        "env": "small_dense_long",
        "learner": "default",
        "reward_scale": 1000.0,
        "update_scale": 1.0,
        "grad_clip": 1.0,
        "physics_gradient": False,
    }
    assert data["algorithm"] == {
        "name": "truncated",
        "pipeline": {"agents": 16, "reset_interval": 144, "kind": "staggered"},
        "estimator": {
            "name": "tbptt",
            "coordinate_fraction": "auto",
            "agents_per_chunk": None,
            "remat": False,
        },
        "schedule": {"name": "constant", "unroll": 4, "min_unroll": 1},
        "meta_optimizer": {"lr": 0.001, "clip": 1.0},
        "task_normalize": 0.5,
    }
    # The meta-loss's options are the algorithm's default meta-loss's.
    assert data["meta_loss"] == {"name": None, "normalize_advantages": False}
    assert data["run"] == {
        "meta_steps": 600,
        "seed": 0,
        "out": "runs/meta-train",
        "keep_checkpoints": 2,
        "low_memory": False,
    }
    assert data["evaluation"] == {"seeds": 3, "updates": 390}
    assert dataclasses.asdict(config.evaluation) == {"seeds": 3, "updates": 390}


def test_run_settings_leave_out_what_does_not_change_meta_training():
    config = l2orl.MetaTrainConfig()
    settings = config.run_settings()
    assert "evaluation" not in settings and settings["run"] == {"seed": 0, "low_memory": False}
    assert {k: v for k, v in config.to_json().items() if k not in ("run", "evaluation")} == {
        k: v for k, v in settings.items() if k != "run"
    }
    # The run's length is part of its identity only where the schedule follows it.
    assert config.with_value("run.meta_steps", 9).run_settings() == settings
    same = config.with_values({"run.out": "x", "run.keep_checkpoints": 0, "evaluation.seeds": 1})
    assert same.run_settings() == settings
    curriculum = config.with_value("algorithm.schedule.name", "curriculum")
    assert curriculum.run_settings()["run"]["meta_steps"] == 78
    assert curriculum.with_value("run.meta_steps", 9).run_settings() != curriculum.run_settings()
    assert l2orl.ScheduleSpec("curriculum").follows_run_length()
    assert not l2orl.ScheduleSpec("log_uniform", 5, 2).follows_run_length()


@pytest.mark.parametrize("name", sorted(l2orl.ESTIMATORS))
def test_every_estimator_name_builds_its_estimator(name):
    loss = "agent" if l2orl.ESTIMATORS[name].needs_differentiable_loss else "unroll_return"
    config = l2orl.MetaTrainConfig(
        algorithm=l2orl.TruncatedTrainingSpec(
            pipeline=l2orl.PipelineSpec(agents=4), estimator=l2orl.EstimatorSpec(name)
        ),
        meta_loss=l2orl.MetaLossSpec(loss),
    )
    algorithm = config.make_algorithm()
    assert type(algorithm.estimator) is l2orl.ESTIMATORS[name]
    assert type(algorithm.meta_loss) is l2orl.META_LOSSES[loss]
    keys = set(config.to_json()["algorithm"]["estimator"]) - {"name"}
    assert keys == {f.name for f in dataclasses.fields(l2orl.ESTIMATORS[name])} & set(
        l2orl.EstimatorSpec.OPTIONS
    )


def test_estimator_options_reach_the_estimator():
    es = l2orl.EstimatorSpec("pes", std=0.1, fitness_shaping="centered_ranks")
    assert es.build(l2orl.optim4rl()) == l2orl.PES(std=0.1, fitness_shaping="centered_ranks")
    chunked = l2orl.EstimatorSpec(agents_per_chunk=8, coordinate_fraction=None, remat=True)
    assert chunked.build(l2orl.optim4rl()) == l2orl.TruncatedBPTT(True, 8, None)
    assert l2orl.EstimatorSpec(remat=True).build(l2orl.optim4rl()).coordinate_fraction is None


@pytest.mark.parametrize("loss", ["agent", "fresh_rollout"])
def test_normalize_advantages_reaches_the_meta_loss(loss):
    config = l2orl.MetaTrainConfig().with_values(
        {"meta_loss.name": loss, "meta_loss.normalize_advantages": True}
    )
    assert config.make_algorithm().meta_loss.normalize_advantages
    assert l2orl.MetaTrainConfig.from_json(config.to_json()) == config
    flat = l2orl.MetaTrainConfig.from_json({"meta_loss": loss, "normalize_advantages": True})
    assert flat.make_meta_loss() == config.make_meta_loss()


def test_meta_loss_options_and_the_algorithms_default():
    fresh = l2orl.MetaLossSpec("fresh_rollout", n_envs=8)
    assert fresh.build("agent") == l2orl.FreshRolloutLoss(n_envs=8)
    assert l2orl.MetaLossSpec().build("agent") == l2orl.AgentLoss()
    assert l2orl.MetaLossSpec(final_fraction=0.5).build("lifetime_return") == (
        l2orl.LifetimeReturn(final_fraction=0.5)
    )
    with pytest.raises(ValueError, match=r"final_fraction: an option of \['lifetime_return'\]"):
        l2orl.MetaLossSpec(final_fraction=0.5).build("agent")


def test_every_schedule_pipeline_and_preset_name_builds_its_part():
    for schedule in l2orl.SCHEDULES:
        built = l2orl.ScheduleSpec(schedule, unroll=5, min_unroll=2).build(meta_steps=10)
        assert type(built) is l2orl.SCHEDULES[schedule] and built.max_length == 5
    for kind in l2orl.PIPELINE_KINDS:
        spec = l2orl.PipelineSpec(8, 4, kind)
        assert spec.build() == l2orl.Pipeline(8, 4, kind)
        algorithm = l2orl.MetaTrainConfig().with_value("algorithm.pipeline", spec.to_json())
        assert algorithm.make_algorithm().pipeline.kind == kind
    for preset, make in l2orl.PRESETS.items():
        spec = l2orl.OptimizerSpec(preset, step_size=0.5)
        optimizer = spec.build(seed=0)
        assert optimizer == make(step_size=0.5) and optimizer.step_size == 0.5
    clipped = l2orl.MetaOptimizerSpec(lr=1e-2, clip=None).build()
    assert _probe(clipped) == _probe(optax.adam(1e-2))


@pytest.mark.parametrize(
    ("changes", "fraction"),
    [
        ({}, 1 / 16),
        ({"optimizer.preset": "STAR"}, None),  # its coordinates share state: autodiff
        ({"algorithm.estimator.coordinate_fraction": None}, None),
        ({"algorithm.estimator.coordinate_fraction": 1}, 1.0),
        ({"algorithm.estimator.remat": True}, None),  # remat is the autodiff route's
    ],
)
def test_the_auto_coordinate_fraction_follows_the_optimizer(changes, fraction):
    """`"auto"` (the default) samples 1/16 of the coordinates where the optimizer allows it
    and differentiates through the unroll where it does not; an explicit value is kept; an
    estimator without the option gets none."""
    config = l2orl.MetaTrainConfig().with_values(changes)
    assert config.make_algorithm().estimator.coordinate_fraction == fraction
    if changes.get("algorithm.estimator.coordinate_fraction", "auto") == "auto":
        es = config.with_value("algorithm.estimator.name", "es")
        assert es.make_algorithm().estimator == l2orl.TruncatedES()


def test_physics_gradient_reaches_brax_tasks_and_picks_autodiff():
    """`physics_gradient` builds the task's brax env with the switch on, and `"auto"` then
    differentiates through the unroll, the one route that follows the physics."""
    task = l2orl.TaskSpec("brax:fast", physics_gradient=True)
    config = l2orl.MetaTrainConfig(
        tasks=(task,), algorithm=l2orl.TruncatedTrainingSpec(l2orl.PipelineSpec(agents=4))
    )
    (built,) = config.make_tasks()
    assert built.env.physics_gradient and built.env.name == "brax:fast"
    assert config.make_algorithm().estimator == l2orl.TruncatedBPTT()
    off = config.with_value("tasks[0].physics_gradient", False)
    assert off.make_algorithm().estimator.coordinate_fraction == 1 / 16
    assert not off.make_tasks()[0].env.physics_gradient
    assert config.to_json()["tasks"][0]["physics_gradient"] is True


def test_learners_give_each_env_its_agents_and_task_name():
    config = l2orl.MetaTrainConfig(
        tasks=[
            l2orl.TaskSpec("Catch"),
            l2orl.TaskSpec("CartPole-v1", "ppo", update_scale=0.5),
            l2orl.TaskSpec("CartPole-v1", grad_clip=1),
        ]
    )
    tasks = config.make_tasks()
    assert [t.name for t in tasks] == ["Catch", "CartPole-v1-ppo", "CartPole-v1"]
    assert [t.name for t in config.tasks] == [t.name for t in tasks]
    assert [type(t.learner) for t in tasks] == [rl.A2C, rl.PPO, rl.A2C]
    assert all(t.learner.n_envs == 1 for t in tasks[::2]) and tasks[1].learner.n_envs == 4
    assert tasks[1].learner.network == rl.default_learner("CartPole-v1").network
    assert [t.update_scale for t in tasks] == [1.0, 0.5, 1.0]
    assert [t.grad_clip for t in tasks] == [None, None, 1.0]
    assert l2orl.MetaTrainConfig.from_json(config.to_json()) == config


def test_lifetime_training_builds_its_strategy():
    config = l2orl.MetaTrainConfig().with_value("algorithm.name", "lifetime")
    assert config.algorithm == l2orl.LifetimeTrainingSpec()
    algorithm = config.make_algorithm()
    assert type(algorithm) is l2orl.LifetimeTraining and algorithm.lifetime == 128
    assert algorithm.meta_loss == l2orl.LifetimeReturn()  # the algorithm's own meta-loss
    assert (algorithm.agents, algorithm.fitness_shaping) == (1, "centered_ranks")
    strategy = algorithm.strategy
    assert type(strategy) is l2orl.AntitheticES and (strategy.pairs, strategy.std) == (8, 0.01)
    assert _probe(strategy.meta_optimizer) == _probe(optax.adam(1e-3))
    evosax = config.with_values(
        {"algorithm.strategy.name": "evosax", "algorithm.strategy.evosax": "SNES"}
    )
    assert evosax.algorithm.strategy == l2orl.StrategySpec("evosax", evosax="SNES")
    assert evosax.algorithm.strategy.build() == l2orl.EvosaxStrategy("SNES")
    assert set(evosax.to_json()["algorithm"]["strategy"]) == {
        "name",
        "evosax",
        "population_size",
        "std",
        "options",
        "params",
    }
    assert config.run_settings()["run"] == {"seed": 0, "low_memory": False}


@pytest.mark.slow  # the lifetime algorithm's runs: tests/test_meta.py, on the toy task
def test_a_lifetime_recipe_meta_trains(tmp_path):
    config = l2orl.MetaTrainConfig().with_values(
        {
            "algorithm": {"name": "lifetime", "lifetime": 2, "strategy": {"pairs": 1}},
            "run.meta_steps": 1,
            "run.out": str(tmp_path),
        }
    )
    algorithm, state = config.meta_train(progress=False)
    assert int(state.meta_step) == 1 and int(state.skipped) == 0
    recorded = json.loads((tmp_path / "config.json").read_text())["settings"]
    assert recorded == config.run_settings()
    assert algorithm.optimizer_at(state).n_meta_parameters == 514


def test_with_value_sets_by_path_and_renaming_drops_options():
    config = l2orl.MetaTrainConfig()
    assert config.with_value("algorithm.estimator.coordinate_fraction", 0.25).algorithm.estimator
    assert config.with_value("tasks[1].env", "CartPole-v1").tasks[1] == l2orl.TaskSpec(
        "CartPole-v1"
    )  # one past the end adds a task
    chunked = config.with_value("algorithm.estimator.agents_per_chunk", 8)
    es = chunked.with_value("algorithm.estimator.name", "es")
    assert es.algorithm.estimator == l2orl.EstimatorSpec("es")  # tbptt's options dropped
    fresh = config.with_values({"meta_loss.name": "fresh_rollout", "meta_loss.n_envs": 8})
    assert fresh.make_meta_loss() == l2orl.FreshRolloutLoss(n_envs=8)
    assert config.replace(run=l2orl.RunSpec(seed=3)).make_optimizer() == l2orl.optim4rl(
        key=jax.random.key(3)
    )


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("tasks[0].env", "Catchy", r"tasks\[0\]\.env: unknown environment 'Catchy'; available"),
        ("tasks[1].env", "Foo", r"tasks\[1\]\.env: unknown environment 'Foo'"),
        ("tasks", [], "tasks: must be a non-empty list of tasks"),
        ("tasks[2].env", "Catch", r"tasks\[2\]: out of range: the list holds 1"),
        ("tasks[0].learner", "sgd", r"tasks\[0\]\.learner: unknown learner 'sgd'; expected"),
        ("tasks[1]", {"env": "Catch"}, r"tasks: each \(env, learner\) must appear once"),
        ("tasks[0].reward_scale", 10, r"reward_scale: only for the gridworlds; 'Catch' takes"),
        ("tasks[0].physics_gradient", 1, r"physics_gradient: must be true or false, got 1"),
        ("tasks[0].physics_gradient", True, r"physics_gradient: only for brax envs .* 'Catch'"),
        ("tasks[0].grad_clip", 0, r"tasks\[0\]\.grad_clip: must be a positive finite number or"),
        ("algorithm.schedule.unroll", 0, "algorithm.schedule.unroll: must be a positive int"),
        ("algorithm.pipeline.agents", True, "pipeline.agents: must be a positive int, got True"),
        ("algorithm.meta_optimizer.lr", -1.0, "meta_optimizer.lr: must be a positive finite"),
        ("algorithm.meta_optimizer.clip", 0, r"clip: must be a positive finite number or null"),
        ("run.low_memory", "yes", "run.low_memory: must be true or false, got 'yes'"),
        ("run.seed", 1.5, "run.seed: must be an int, got 1.5"),
        ("run.keep_checkpoints", -1, "run.keep_checkpoints: must be an int ≥ 0"),
        ("run.out", "", "run.out: must be a non-empty string"),
        ("evaluation.seeds", 0, "evaluation.seeds: must be a positive int"),
        ("optimizer.preset", "Adam", "optimizer.preset: unknown optimizer preset 'Adam'"),
        ("optimizer.step_size", 0, "optimizer.step_size: must be a positive finite number"),
        ("algorithm.name", "full", "algorithm.name: unknown algorithm 'full'"),
        ("algorithm.estimator.name", "bptt", "algorithm.estimator.name: unknown estimator"),
        ("meta_loss.name", "return", "meta_loss.name: unknown meta-loss 'return'"),
        ("algorithm.schedule.name", "linear", "algorithm.schedule.name: unknown schedule"),
        ("algorithm.pipeline.kind", "stagger", "pipeline.kind: unknown pipeline kind 'stagger'"),
        ("algorithm.estimator.coordinate_fraction", 2, "estimator.coordinate_fraction: must be"),
        ("algorithm.estimator.coordinate_fraction", "off", r"'auto', null or in \(0, 1\], got"),
        ("algorithm.estimator.agents_per_chunk", 12, r"must divide pipeline.agents \(64\), got"),
        ("algorithm.estimator.std", 0.1, r"estimator.std: an option of \['es', 'pes'\], not 'tb"),
        ("algorithm.estimator.remat", 1, "algorithm.estimator.remat: must be true or false"),
        ("algorithm.estimator.fitness_shaping", "rank", "fitness_shaping: unknown fitness"),
        ("algorithm.estimater.std", 1, r"algorithm.estimater: unknown key; expected one of \["),
        ("algorithm.task_normalize", 0, "algorithm.task_normalize: must be a positive"),
        ("algorithm.schedule.min_unroll", 5, "algorithm.schedule.min_unroll: 5 exceeds unroll"),
        ("meta_loss.name", "unroll_return", "estimator 'tbptt' needs a differentiable meta-loss"),
        ("meta_loss.n_envs", 8, r"meta_loss.n_envs: an option of \['fresh_rollout'\], not 'ag"),
        ("meta_loss.normalize_advantages", "yes", "normalize_advantages: must be true or false"),
        ("tasks.env", "Catch", "tasks: is .*, not an object, so .env names nothing"),
        ("run[0]", 1, r"run: is not a list, so \[0\] names nothing"),
        ("run..seed", 1, r"'run..seed' is not a setting's path"),
        ("optimizer", 3, "optimizer: must be an object with keys"),
    ],
)
def test_bad_values_are_named_by_their_path(path, value, message):
    with pytest.raises(ValueError, match=message):
        l2orl.MetaTrainConfig().with_value(path, value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"optimizer.preset": "STAR", "algorithm.estimator.coordinate_fraction": 0.5},
            "algorithm.estimator: coordinate_fraction needs .* NominalStepOptimizer is not one",
        ),
        (
            {
                "tasks[0].env": "brax:fast",
                "tasks[0].physics_gradient": True,
                "algorithm.estimator.coordinate_fraction": 0.5,
            },
            "coordinate_fraction: 0.5 needs .* with physics_gradient the environments'",
        ),
        (
            {"algorithm.estimator.remat": True, "algorithm.estimator.coordinate_fraction": 1},
            "algorithm.estimator: remat rematerialises the autodiff route",
        ),
        (
            {"algorithm.name": "lifetime", "algorithm.strategy.population_size": 4},
            r"algorithm.strategy.population_size: an option of \['evosax'\], not 'antithetic'",
        ),
        (
            {"algorithm.name": "lifetime", "algorithm.strategy.name": "cma"},
            "algorithm.strategy.name: unknown search strategy 'cma'",
        ),
        (
            {"algorithm.name": "lifetime", "algorithm.strategy.std": None},
            "algorithm.strategy.std: must be a positive finite number, got None",
        ),
        (
            {
                "algorithm.name": "lifetime",
                "algorithm.strategy.name": "evosax",
                "algorithm.strategy.evosax": "Nope",
            },
            "algorithm.strategy: unknown evosax strategy 'Nope'",
        ),
        (
            {"algorithm.name": "lifetime", "algorithm.fitness_shaping": "ranks"},
            "algorithm.fitness_shaping: unknown fitness shaping 'ranks'",
        ),
        ({"algorithm.name": "lifetime", "algorithm.lifetime": 0}, "algorithm.lifetime: must be"),
    ],
)
def test_bad_combinations_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        l2orl.MetaTrainConfig().with_values(changes)


def test_specs_check_themselves():
    with pytest.raises(ValueError, match=r"^coordinate_fraction: must be 'auto', null or in"):
        l2orl.EstimatorSpec(coordinate_fraction=2)
    with pytest.raises(ValueError, match=r"^env: unknown environment 'Foo'"):
        l2orl.TaskSpec("Foo")
    with pytest.raises(ValueError, match=r"^estimator.agents_per_chunk: must divide"):
        l2orl.TruncatedTrainingSpec(estimator=l2orl.EstimatorSpec(agents_per_chunk=5))
    with pytest.raises(ValueError, match=r"^strategy: must be an l2orl.StrategySpec"):
        l2orl.LifetimeTrainingSpec(strategy={"name": "antithetic"})
    with pytest.raises(ValueError, match=r"^seeds: must be a positive int"):
        l2orl.EvaluationSpec(seeds=0)
    with pytest.raises(ValueError, match=r"^tasks\[1\]: must be an l2orl.TaskSpec"):
        l2orl.MetaTrainConfig(tasks=(l2orl.TaskSpec(), "Catch"))
    assert l2orl.RunSpec(low_memory=True).compiler_options() == {
        "xla_cpu_use_fusion_emitters": False
    }


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        ({"agents": 4, "agentz": 3}, r"unknown keys \['agentz'\]; valid keys: \['agent_clip'"),
        ({"agentz": 3}, r"agentz: unknown key; expected one of \['algorithm', 'evaluation'"),
        ({"env": []}, "env: must be a non-empty list of env names"),
        ({"reward_scale": [10, 1]}, r"reward_scale: must be null or a list of 1 values"),
        ({"env": "Catch", "tasks": []}, r"mixes the flat form's keys \['env'\] with the nested"),
        ({"unroll": 0}, "algorithm.schedule.unroll: must be a positive int, got 0"),
        ({"coordinate_fraction": 0.5, "estimator": "pes"}, "coordinate_fraction: an option of"),
    ],
)
def test_flat_errors_are_named(flat, message):
    with pytest.raises(ValueError, match=message):
        l2orl.MetaTrainConfig.from_json(flat)


def test_the_flat_form_reads_as_the_nested_one():
    flat = {
        "env": ["small_dense_short", "Catch"],
        "reward_scale": [100, None],
        "agent_clip": 1,
        "estimator": "es",
        "coordinate_fraction": None,  # both meant no fraction for es
        "meta_loss": "unroll_return",
        "eval_updates": 5,
    }
    config = l2orl.MetaTrainConfig.from_json(flat)
    assert [(t.env, t.reward_scale, t.grad_clip) for t in config.tasks] == [
        ("small_dense_short", 100.0, 1.0),
        ("Catch", None, 1.0),
    ]
    assert config.algorithm.estimator == l2orl.EstimatorSpec("es")
    assert config.meta_loss == l2orl.MetaLossSpec("unroll_return")
    assert config.evaluation == l2orl.EvaluationSpec(updates=5)
    assert l2orl.MetaTrainConfig.from_json({}) == l2orl.MetaTrainConfig()


def test_from_json_errors_name_the_file_and_keys(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"run": {"seeds": 3}}))
    with pytest.raises(ValueError, match=r"run.seeds: unknown key; expected one of \['keep_"):
        l2orl.MetaTrainConfig.from_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        l2orl.MetaTrainConfig.from_json(path)
    path.write_text("[1]")
    with pytest.raises(ValueError, match=r"bad\.json must hold a JSON object"):
        l2orl.MetaTrainConfig.from_json(path)
    with pytest.raises(ValueError, match="no config file at"):
        l2orl.MetaTrainConfig.from_json(tmp_path / "missing.json")


def test_configs_are_frozen_and_replace_checks_again():
    config = l2orl.MetaTrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.run = l2orl.RunSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.run.seed = 3
    spec = l2orl.PipelineSpec()
    assert spec.replace(agents=8).agents == 8
    with pytest.raises(ValueError, match="agents: must be a positive int"):
        spec.replace(agents=0)
    algorithm = l2orl.TruncatedTrainingSpec(schedule=l2orl.ScheduleSpec(unroll=2))
    assert config.replace(algorithm=algorithm).make_algorithm().schedule.max_length == 2
    with pytest.raises(ValueError, match=r"meta_loss: must be an l2orl.MetaLossSpec"):
        config.replace(meta_loss="agent")
    assert l2orl.MetaOptimizerSpec(clip=None) == l2orl.MetaOptimizerSpec.from_json({"clip": None})
    assert l2orl.OptimizerSpec.from_json({"preset": "STAR"}) == l2orl.OptimizerSpec("STAR")
