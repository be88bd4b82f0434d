import dataclasses
import json
from pathlib import Path

import pytest

import l2orl
import l2orl.rl as rl

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "pretrain_gridworld.json"


def test_defaults_are_the_reference_catch_recipe():
    config = l2orl.MetaTrainConfig()
    trainer = config.trainer()
    assert [t.name for t in trainer.tasks] == ["Catch"]
    assert trainer.tasks[0].pipeline == l2orl.Pipeline(64, 32, "staggered")
    assert trainer.tasks[0].learner.n_envs == 1  # single-env agents
    assert trainer.estimator == l2orl.TruncatedBPTT(coordinate_fraction=1 / 16)
    assert trainer.meta_loss == l2orl.AgentLoss()
    assert trainer.schedule == l2orl.ConstantTruncation(4)
    assert trainer.optimizer.n_meta_parameters == 514
    assert config.compiler_options() is None


def test_json_round_trip_reads_the_shipped_recipe(tmp_path):
    config = l2orl.MetaTrainConfig.from_json(EXAMPLE_CONFIG)
    assert len(config.env) == 6 and config.task_normalize == 0.5
    data = config.to_json()
    assert data["env"] == json.loads(EXAMPLE_CONFIG.read_text())["env"]  # lists, as read
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    assert l2orl.MetaTrainConfig.from_json(path) == config
    ignored = {"out", "keep_checkpoints", "eval_seeds", "eval_updates", "meta_steps"}
    # normalize_advantages is recorded by the meta-loss's own description instead.
    assert set(config.run_settings()) == set(data) - ignored - {"normalize_advantages"}
    # The run's length is part of its identity only where the schedule follows it.
    assert config.replace(meta_steps=9).run_settings() == config.run_settings()
    curriculum = config.replace(schedule="curriculum")
    assert curriculum.replace(meta_steps=9).run_settings() != curriculum.run_settings()
    trainer = config.trainer()
    assert [t.env.reward_scale for t in trainer.tasks][:2] == [1000.0, 100.0]
    assert [t.update_scale for t in trainer.tasks] == [1.0, 3.0, 3.0, 3.0, 1.0, 3.0]
    assert all(t.grad_clip == 1.0 for t in trainer.tasks) and trainer.task_normalize == 0.5


@pytest.mark.parametrize("name", sorted(l2orl.ESTIMATORS))
def test_every_estimator_name_builds_its_estimator(name):
    loss = "agent" if l2orl.ESTIMATORS[name].needs_differentiable_loss else "unroll_return"
    trainer = l2orl.MetaTrainConfig(estimator=name, meta_loss=loss, agents=4).trainer()
    assert type(trainer.estimator) is l2orl.ESTIMATORS[name]
    assert type(trainer.meta_loss) is l2orl.META_LOSSES[loss]


@pytest.mark.parametrize("loss", ["agent", "fresh_rollout"])
def test_normalize_advantages_reaches_the_meta_loss(loss):
    config = l2orl.MetaTrainConfig(meta_loss=loss, normalize_advantages=True, agents=4)
    assert config.trainer().meta_loss.normalize_advantages
    assert not config.replace(normalize_advantages=False).make_meta_loss().normalize_advantages
    assert l2orl.MetaTrainConfig.from_json(config.to_json()) == config


def test_every_schedule_pipeline_and_preset_name_builds_its_part():
    for schedule in l2orl.SCHEDULES:
        config = l2orl.MetaTrainConfig(schedule=schedule, min_unroll=2, unroll=5)
        built = config.make_schedule()
        assert type(built) is l2orl.SCHEDULES[schedule] and built.max_length == 5
    for kind in l2orl.PIPELINE_KINDS:
        assert l2orl.MetaTrainConfig(pipeline=kind).make_tasks()[0].pipeline.kind == kind
    for preset, make in l2orl.PRESETS.items():
        optimizer = l2orl.MetaTrainConfig(optimizer=preset, step_size=0.5).make_optimizer()
        assert optimizer == make(step_size=0.5) and optimizer.step_size == 0.5


@pytest.mark.parametrize(
    ("changes", "fraction"),
    [
        ({}, 1 / 16),
        ({"optimizer": "STAR"}, None),  # its coordinates share state: autodiff
        ({"coordinate_fraction": None}, None),
        ({"coordinate_fraction": 1}, 1.0),
    ],
)
def test_the_auto_coordinate_fraction_follows_the_optimizer(changes, fraction):
    """`"auto"` (the default) samples 1/16 of the coordinates where the optimizer allows it
    and differentiates through the unroll where it does not; an explicit value is kept; an
    estimator without the option gets none."""
    config = l2orl.MetaTrainConfig(**changes)
    assert config.make_estimator().coordinate_fraction == fraction
    assert config.trainer().estimator == config.make_estimator()
    if changes.get("coordinate_fraction", "auto") in ("auto", None):
        es = l2orl.MetaTrainConfig(**changes, estimator="es")
        assert es.make_estimator() == l2orl.TruncatedES()


def test_physics_gradient_reaches_brax_tasks_and_picks_autodiff():
    """`physics_gradient` builds every task's brax env with the switch on, and `"auto"` then
    differentiates through the unroll, the one route that follows the physics."""
    config = l2orl.MetaTrainConfig(env=["brax:fast"], agents=4, physics_gradient=True)
    (task,) = config.make_tasks()
    assert task.env.physics_gradient and task.env.name == "brax:fast"
    assert config.make_estimator() == l2orl.TruncatedBPTT()
    assert config.replace(physics_gradient=False).make_estimator().coordinate_fraction == 1 / 16
    assert not config.replace(physics_gradient=False).make_tasks()[0].env.physics_gradient
    assert config.to_json()["physics_gradient"] is True


def test_learners_give_each_env_its_agents_and_task_name():
    config = l2orl.MetaTrainConfig(
        env=["Catch", "CartPole-v1", "CartPole-v1"], learner=["default", "ppo", "default"]
    )
    tasks = config.make_tasks()
    assert [t.name for t in tasks] == ["Catch", "CartPole-v1-ppo", "CartPole-v1"]
    assert [type(t.learner) for t in tasks] == [rl.A2C, rl.PPO, rl.A2C]
    assert all(t.learner.n_envs == 1 for t in tasks[::2]) and tasks[1].learner.n_envs == 4
    assert tasks[1].learner.network == rl.default_learner("CartPole-v1").network
    assert l2orl.MetaTrainConfig.from_json(config.to_json()) == config
    assert l2orl.MetaTrainConfig().learners() == ("default",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": ["Catchy"]}, "unknown environment 'Catchy'; available"),
        ({"env": []}, "env must be a non-empty list"),
        ({"unroll": 0}, "unroll must be a positive int, got 0"),
        ({"agents": True}, "agents must be a positive int, got True"),
        ({"meta_lr": -1.0}, "meta_lr must be a positive finite number, got -1.0"),
        ({"meta_clip": 0}, "meta_clip must be a positive finite number or None, got 0"),
        ({"low_memory": "yes"}, "low_memory must be true or false, got 'yes'"),
        ({"physics_gradient": 1}, "physics_gradient must be true or false, got 1"),
        ({"physics_gradient": True}, r"physics_gradient is only for brax envs .* 'Catch' has"),
        (
            {"env": ["brax:fast"], "physics_gradient": True, "coordinate_fraction": 0.5},
            "with physics_gradient the environments' states carry derivatives too",
        ),
        ({"optimizer": "Adam"}, "unknown optimizer 'Adam'; expected one of"),
        ({"estimator": "bptt"}, "unknown estimator 'bptt'"),
        ({"meta_loss": "return"}, "unknown meta_loss 'return'"),
        ({"normalize_advantages": "yes"}, "normalize_advantages must be true or false, got 'yes'"),
        (
            {"normalize_advantages": True, "estimator": "es", "meta_loss": "unroll_return"},
            "normalize_advantages is an option of the 'agent' and 'fresh_rollout' meta-losses, "
            "not 'unroll_return'",
        ),
        ({"schedule": "linear"}, "unknown schedule 'linear'"),
        ({"pipeline": "stagger"}, "unknown pipeline kind 'stagger'"),
        ({"agents_per_chunk": 12}, r"agents_per_chunk must divide agents \(64\), got 12"),
        (
            {"agents_per_chunk": 8, "estimator": "es"},
            "agents_per_chunk is an option of another estimator, not 'es'",
        ),
        (
            {"coordinate_fraction": 0.5, "estimator": "pes"},
            "coordinate_fraction is an option of another estimator, not 'pes'",
        ),
        (
            {"coordinate_fraction": 2},
            r"coordinate_fraction must be 'auto', null or in \(0, 1\], got 2",
        ),
        (
            {"coordinate_fraction": 0.5, "optimizer": "STAR"},
            "NominalStepOptimizer is not one: use coordinate_fraction=None",
        ),
        ({"meta_loss": "unroll_return"}, "estimator 'tbptt' needs a differentiable meta-loss"),
        ({"min_unroll": 5}, "min_unroll 5 exceeds unroll 4"),
        ({"reward_scale": [10]}, "only for the gridworlds; 'Catch' takes none"),
        (
            {"env": ["small_dense_short"], "reward_scale": [1, 2]},
            "reward_scale must be null or a list of 1 positive numbers",
        ),
        ({"seed": 1.5}, "seed must be an int, got 1.5"),
        ({"learner": ["sgd"]}, "unknown learner 'sgd'; expected one of"),
        ({"learner": ["ppo", "ppo"]}, "learner must be null or a list of 1 names"),
        ({"env": ["Catch", "Catch"]}, r"each \(env, learner\) must appear once"),
    ],
)
def test_bad_values_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        l2orl.MetaTrainConfig(**changes)


def test_from_json_errors_name_the_file_and_keys(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"agentz": 3}))
    with pytest.raises(ValueError, match=r"unknown keys \['agentz'\]; valid keys: \['agent_clip'"):
        l2orl.MetaTrainConfig.from_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        l2orl.MetaTrainConfig.from_json(path)
    with pytest.raises(ValueError, match="no config file at"):
        l2orl.MetaTrainConfig.from_json(tmp_path / "missing.json")


def test_configs_are_frozen_and_replace_checks_again():
    config = l2orl.MetaTrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.agents = 3
    assert config.replace(agents=8).agents == 8
    with pytest.raises(ValueError, match="agents must be a positive int"):
        config.replace(agents=0)
