import json
import re

import pytest

from l2orl import cli


def test_meta_train_then_plot(tmp_path, capsys):
    """The main job's path (its evaluation is `evaluate`'s, tested below)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"agents": 2, "unroll": 1, "reset_interval": 2, "meta_steps": 2}))
    out = tmp_path / "run"
    args = ["--config", str(config), "--out", str(out), "--low-memory", "--no-evaluate"]
    assert cli.main(["meta-train", *args]) == 0
    assert f"saved {out / 'optimizer.l2o'} (0 meta-steps skipped)" in capsys.readouterr().out
    assert (out / "optimizer.l2o").is_file() and not (out / "evaluate-Catch.png").exists()
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["agents"] == 2 and settings["env"] == ["Catch"] and settings["low_memory"]
    assert cli.main(["plot", str(out / "metrics.jsonl"), "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["meta-train", "--env", "Catchy"], "error: unknown environment 'Catchy'; available"),
        (["meta-train", "--unroll", "0"], None),  # argparse: exit code 2
        (["meta-train", "--agents-per-chunk", "12"], r"error: agents_per_chunk must divide"),
        (["meta-train", "--estimator", "bptt"], "error: unknown estimator 'bptt'"),
        (["meta-train", "--meta-loss", "unroll_return"], "error: estimator 'tbptt' needs a"),
        (["meta-train", "--config", "missing.json"], "error: no config file at missing.json"),
        (["evaluate", "--optimizer", "adamw", "--env", "Catch"], "error: optimizer 'adamw'"),
        (["evaluate", "--optimizer", "Optim4RL", "--env", "nope"], "error: unknown environment"),
        (["plot", "missing.jsonl"], "error: no metrics log at missing.jsonl"),
    ],
)
def test_bad_input_is_one_error_line_before_any_work(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--out", "run"] if argv[0] == "meta-train" else argv)
    if message is None:
        assert exit_info.value.code == 2
    else:
        assert re.match(message, str(exit_info.value.code))
    assert not any(tmp_path.glob("**/checkpoints"))


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"env": "small_dense_short", "reward_scale": [100], "agents": 8}))
    args = cli.parser().parse_args(["meta-train", "--config", str(path), "--agents", "4"])
    config = cli.config_of(args)
    assert config.env == ("small_dense_short",) and config.agents == 4
    assert config.reward_scale == (100,) and config.meta_lr == 3e-3  # file, flag, default


def test_presets_lists_each_with_its_count(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, count in [("Optim4RL", 514), ("L2LGD2", 281), ("LinearOptim", 275), ("STAR", 207)]:
        assert re.search(rf"^{name}\s+\w+\s+{count}$", out, re.M)


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["meta-trian"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'meta-trian'" in capsys.readouterr().err


@pytest.mark.slow  # rl.compare is tested directly; this is its command
def test_evaluate_a_pretrained_optimizer_by_name(tmp_path, capsys):
    args = ["evaluate", "--optimizer", "optim4rl-gridworld", "--env", "Catch", "--seeds", "1"]
    assert cli.main([*args, "--updates", "3", "--step-size", "1e-2", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| learned |" in text and "| adam 0.001 |" in text and "| rmsprop 0.001 |" in text
    assert (tmp_path / "evaluate-Catch.png").is_file()
    assert (tmp_path / "evaluate-Catch.json").is_file()
    with pytest.raises(SystemExit):
        cli.main([*args, "--step-size", "0"])


@pytest.mark.slow
def test_meta_train_then_evaluate_behind_the_agents_clip(tmp_path, capsys):
    """The main job end to end, with `agent_clip`: every row of the evaluation is clipped."""
    out = tmp_path / "run"
    small = ["--agents", "2", "--unroll", "1", "--reset-interval", "2", "--meta-steps", "2"]
    evaluation = ["--eval-seeds", "1", "--eval-updates", "3", "--agent-clip", "1"]
    assert cli.main(["meta-train", *small, *evaluation, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| learned |" in text and "| adam 0.001 |" in text and "| rmsprop 0.001 |" in text
    assert (out / "evaluate-Catch.png").is_file()
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["agent_clip"] == 1.0 and "eval_seeds" not in settings
