import json

import pytest

import l2orl
from l2orl import cli


def test_meta_train_evaluate_and_plot(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"agents": 2, "unroll": 1, "reset_interval": 2, "meta_steps": 2}))
    out = tmp_path / "run"
    code = cli.main(
        [
            "meta-train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--eval-seeds",
            "1",
            "--eval-updates",
            "3",
            "--low-memory",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| learned |" in text and "| adam 0.001 |" in text
    assert (out / "optimizer.l2o").is_file() and (out / "evaluate-Catch.png").is_file()
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["agents"] == 2 and settings["env"] == ["Catch"] and settings["low_memory"]
    assert cli.main(["plot", str(out / "metrics.jsonl"), "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 1000
    evaluate = ["evaluate", "--optimizer", str(out / "optimizer.l2o"), "--env", "Catch"]
    assert (
        cli.main([*evaluate, "--seeds", "1", "--updates", "3", "--out", str(tmp_path / "eval")])
        == 0
    )
    text = capsys.readouterr().out
    assert "| learned |" in text and "| adam 0.001 |" in text and "| rmsprop 0.001 |" in text
    assert (tmp_path / "eval" / "evaluate-Catch.json").is_file()


def test_bad_configs_fail_before_any_compile(tmp_path):
    with pytest.raises(ValueError, match="unknown environment 'Catchy'; available"):
        cli.main(["meta-train", "--env", "Catchy", "--out", str(tmp_path)])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"agentz": 3}))
    with pytest.raises(SystemExit, match=r"unknown keys \['agentz'\]"):
        cli.main(["meta-train", "--config", str(bad)])
    bad.write_text(json.dumps({"unroll": 0}))
    with pytest.raises(SystemExit, match="unroll must be a positive int, got 0"):
        cli.main(["meta-train", "--config", str(bad)])
    bad.write_text(json.dumps({"low_memory": "yes"}))
    with pytest.raises(SystemExit, match="low_memory must be true or false, got 'yes'"):
        cli.main(["meta-train", "--config", str(bad)])
    with pytest.raises(SystemExit):
        cli.main(["meta-train", "--agents", "0"])
    with pytest.raises(SystemExit, match=r"agents_per_chunk must be null or a positive int "
                       r"dividing agents \(64\), got 12"):  # fmt: skip
        cli.main(["meta-train", "--agents-per-chunk", "12"])
    with pytest.raises(SystemExit, match="agents_per_chunk is for the tbptt estimator, not 'es'"):
        cli.main(["meta-train", "--agents-per-chunk", "8", "--estimator", "es"])
    with pytest.raises(SystemExit, match="neither a checkpoint file, a preset"):
        cli.main(["evaluate", "--optimizer", "adamw", "--env", "Catch"])
    with pytest.raises(SystemExit, match="no metrics log"):
        cli.main(["plot", str(tmp_path / "missing.jsonl")])
    assert not any(tmp_path.glob("*/checkpoints"))


def test_multi_task_settings_reach_the_tasks(tmp_path):
    settings = {
        **cli.META_TRAIN_DEFAULTS, "env": ["small_dense_short", "big_dense_short"],
        "reward_scale": [100, 10], "update_scale": [3, 1], "task_normalize": 0.5,
    }  # fmt: skip
    trainer = cli.make_trainer(settings)
    assert [t.env.reward_scale for t in trainer.tasks] == [100.0, 10.0]
    assert [t.update_scale for t in trainer.tasks] == [3.0, 1.0]
    assert trainer.task_normalize == 0.5
    assert trainer.estimator == l2orl.TruncatedBPTT()
    chunked = cli.make_trainer({**settings, "agents_per_chunk": 8})
    assert chunked.estimator == l2orl.TruncatedBPTT(agents_per_chunk=8)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"env": ["small_dense_short"], "reward_scale": [1, 2]}))
    with pytest.raises(SystemExit, match=r"reward_scale must be null or a list of 1 positive"):
        cli.main(["meta-train", "--config", str(bad)])
    bad.write_text(json.dumps({"reward_scale": [10]}))  # Catch has no reward scale
    with pytest.raises(SystemExit, match="only for the gridworlds; 'Catch' takes none"):
        cli.main(["meta-train", "--config", str(bad)])
    with pytest.raises(SystemExit):
        cli.main(["meta-train", "--task-normalize", "-1"])
    assert not any(tmp_path.glob("*/checkpoints"))


def test_evaluate_a_pretrained_optimizer_by_name(tmp_path, capsys):
    args = ["evaluate", "--optimizer", "optim4rl-gridworld", "--env", "Catch", "--seeds", "1"]
    assert cli.main([*args, "--updates", "3", "--step-size", "1e-2", "--out", str(tmp_path)]) == 0
    assert "| learned |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main([*args, "--step-size", "0"])
    with pytest.raises(SystemExit, match=r"nor a pretrained optimizer \('optim4rl-gridworld',\)"):
        cli.main(["evaluate", "--optimizer", "optim4rl-grid", "--env", "Catch"])
