import json
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import l2orl
from l2orl import cli

SET = ["--set"]


def test_meta_train_then_plot(tmp_path, capsys):
    """The main job's path (its evaluation is `evaluate`'s, tested below)."""
    recipe = {"algorithm": {"pipeline": {"agents": 2, "reset_interval": 2}}, "run": {}}
    recipe["algorithm"]["schedule"], recipe["run"]["meta_steps"] = {"unroll": 1}, 2
    config = tmp_path / "config.json"
    config.write_text(json.dumps(recipe))
    out = tmp_path / "run"
    args = ["--config", str(config), "--out", str(out), "--set", "run.low_memory=true"]
    assert cli.main(["meta-train", *args, "--no-evaluate"]) == 0
    assert f"saved {out / 'optimizer.l2o'} (0 meta-steps skipped)" in capsys.readouterr().out
    assert (out / "optimizer.l2o").is_file() and not (out / "evaluate-Catch.png").exists()
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["algorithm"]["pipeline"]["agents"] == 2 and settings["run"]["low_memory"]
    assert [t["env"] for t in settings["tasks"]] == ["Catch"]
    assert cli.main(["plot", str(out / "metrics.jsonl"), "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["meta-train", "--env", "Catchy"],
            r"error: tasks\[0\]\.env: unknown environment 'Catchy'",
        ),
        (["meta-train", "--unroll", "4"], None),  # argparse's own error: not a flag any more
        (["meta-train", "--set", "unroll"], None),  # argparse's: not PATH=VALUE
        (["meta-train", "--meta-steps", "0"], "error: run.meta_steps: must be a positive int"),
        (["meta-train", *SET, "algorithm.schedule.unroll=0"], "error: algorithm.schedule.unro"),
        (["meta-train", *SET, "algorithm.estimator.agents_per_chunk=12"], r"error: .* must div"),
        (["meta-train", *SET, "algorithm.estimator.name=bptt"], "error: algorithm.estimator.n"),
        (["meta-train", *SET, "meta_loss.name=unroll_return"], r"error: .* estimator 'tbptt' ne"),
        (["meta-train", *SET, "run.keep_checkpoints=-1"], "error: run.keep_checkpoints: must"),
        (["meta-train", *SET, "tasks[0].physics_gradient=true"], r"error: tasks\[0\]\.physic"),
        (["meta-train", *SET, "algorithm.estimatr.std=1"], "error: algorithm.estimatr: unknow"),
        (
            ["meta-train", *SET, "algorithm.estimator.coordinate_fraction=2"],
            r"error: algorithm.estimator.coordinate_fraction: must be 'auto', null or in \(0, 1\]",
        ),
        (["meta-train", "--config", "missing.json"], "error: no config file at missing.json"),
        (["evaluate", "--optimizer", "adamw", "--env", "Catch"], "error: optimizer 'adamw'"),
        (["evaluate", "--optimizer", "x.l2o", "--env", "Catch"], "error: no checkpoint file at x"),
        (["evaluate", "--optimizer", "Optim4RL", "--env", "nope"], "error: unknown environment"),
        (["plot", "missing.jsonl"], "error: no metrics log at missing.jsonl"),
    ],
)
def test_bad_input_is_one_error_line_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [*argv, "--out", "run"] if argv[0] == "meta-train" else argv
    if message is None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    else:
        assert cli.main(argv) == 2
        assert re.fullmatch(message + ".*\n", capsys.readouterr().err)
    assert not any(tmp_path.glob("**/checkpoints"))


@pytest.mark.slow  # eleven interpreters importing JAX; the messages are tested in-process above
def test_user_errors_reach_the_shell_as_one_line_and_status_2(tmp_path):
    """The real command in subprocesses (run together): one `error: …` line on stderr naming
    the value, exit status 2, no traceback; `--debug` shows the traceback."""
    (tmp_path / "bad.json").write_text('{"agents": 4,\n "unroll" 2}')
    (tmp_path / "log.jsonl").write_text('{"meta_step": 1}\n{"meta_step": \n')
    (tmp_path / "some.json").write_text("{}")
    (tmp_path / "file").write_text("")
    cases = {
        ("meta-train", "--env", "nope"): r"error: tasks\[0\]\.env: unknown environment 'nope'",
        ("evaluate", "--env", "nope", "--optimizer", "Optim4RL"): "error: unknown environment",
        ("meta-train", "--config", "missing.json"): "error: no config file at missing.json",
        ("meta-train", "--config", "bad.json"): "error: bad.json is not valid JSON: .* line 2",
        ("plot", "log.jsonl"): "error: log.jsonl is not a metrics log .* line 2",
        ("evaluate", "--optimizer", "some.json", "--env", "Catch"): (
            "error: some.json is not a complete l2orl checkpoint"
        ),
        ("meta-train", "--out", "file", "--no-evaluate"): "error: out_dir file is a file, not a",
        ("meta-train", "--seed", "x"): r"error: argument --seed: invalid int value: 'x' \(`l2orl",
        ("evaulate",): r"error: argument command: invalid choice: 'evaulate' \(choose from",
        ("evaluate", "--optimizer", "Optim4RL", "--env", "Catch", "--out", "file/x"): (
            r"error: \[Errno 20\] Not a directory: 'file/x'"  # before any training
        ),
    }
    command = [sys.executable, "-m", "l2orl.cli"]
    runs = {
        argv: subprocess.Popen(
            [*command, *argv], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for argv in [*cases, ("meta-train", "--env", "nope", "--debug")]
    }
    for argv, expected in cases.items():
        _, err = runs[argv].communicate(timeout=300)
        assert runs[argv].returncode == 2, argv
        assert re.fullmatch(expected + ".*\n", err.decode()), (argv, err)
    _, err = runs["meta-train", "--env", "nope", "--debug"].communicate(timeout=300)
    assert b"Traceback" in err and b"RecipeError: tasks[0].env: unknown environment 'nope'" in err
    assert not any(tmp_path.glob("**/checkpoints"))


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "c.json"
    flat = {"env": "small_dense_short", "reward_scale": [100], "agents": 8, "agent_clip": 1}
    path.write_text(json.dumps(flat))
    argv = ["meta-train", "--config", str(path), "--env", "small_dense_long", "--env", "Catch"]
    argv += ["--seed", "3", "--set", "algorithm.pipeline.agents=4", "--set", "run.out=runs/x"]
    argv += ["--set", "tasks[1].reward_scale=null", "--set", "algorithm.estimator.name=es"]
    config = cli.config_of(cli.parser().parse_args(argv))
    # Each --env task has the file's first task's settings, then each --set applies in order.
    assert [(t.env, t.reward_scale, t.grad_clip) for t in config.tasks] == [
        ("small_dense_long", 100.0, 1.0),
        ("Catch", None, 1.0),
    ]
    assert config.algorithm.pipeline == l2orl.PipelineSpec(agents=4)  # flag over file
    assert config.algorithm.estimator == l2orl.EstimatorSpec("es")
    assert (config.run.seed, config.run.out, config.algorithm.meta_optimizer.lr) == (
        3,
        "runs/x",
        3e-3,  # the default
    )


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0.25", 0.25),
        ("null", None),
        ("true", True),
        ('{"name": "es"}', {"name": "es"}),
        ("fresh_rollout", "fresh_rollout"),  # not JSON: a string
        ("runs/a=b", "runs/a=b"),  # the first `=` splits
    ],
)
def test_set_values_are_json_or_else_strings(value, parsed):
    args = cli.parser().parse_args(["meta-train", "--set", f"some.path={value}"])
    assert args.set == [("some.path", parsed)]


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
def test_evaluate_a_preset_by_name(tmp_path, capsys):
    args = ["evaluate", "--optimizer", "Optim4RL-scale-free", "--env", "Catch", "--seeds", "1"]
    assert cli.main([*args, "--updates", "3", "--step-size", "1e-2", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| learned |" in text and "| adam 0.001 |" in text and "| rmsprop 0.001 |" in text
    assert (tmp_path / "evaluate-Catch.png").is_file()
    assert (tmp_path / "evaluate-Catch.json").is_file()
    with pytest.raises(SystemExit):
        cli.main([*args, "--step-size", "0"])


@pytest.mark.slow
def test_meta_train_then_evaluate_behind_the_agents_clip(tmp_path, capsys):
    """The main job end to end, with the task's `grad_clip`: every row of the evaluation is
    clipped."""
    out = tmp_path / "run"
    small = [f"--set=algorithm.pipeline.{k}=2" for k in ("agents", "reset_interval")]
    small += ["--set", "algorithm.schedule.unroll=1", "--meta-steps", "2"]
    evaluation = ["--set", "evaluation.seeds=1", "--set", "evaluation.updates=3"]
    evaluation += ["--set", "tasks[0].grad_clip=1"]
    assert cli.main(["meta-train", *small, *evaluation, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| learned |" in text and "| adam 0.001 |" in text and "| rmsprop 0.001 |" in text
    assert (out / "evaluate-Catch.png").is_file()
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["tasks"][0]["grad_clip"] == 1.0 and "evaluation" not in settings


@pytest.mark.slow
def test_signals_checkpoint_and_the_same_command_resumes_bit_identical(tmp_path):
    """SIGINT and SIGTERM: a checkpoint at the meta-step under way, one line, 130 / 143;
    SIGKILL: nothing said, and its lock does not block the rerun. A second run on a busy
    folder is refused. Every rerun of the same command ends as the uninterrupted run."""
    steps = 600
    argv = [sys.executable, "-m", "l2orl.cli", "meta-train", "--set=algorithm.pipeline.agents=4"]
    argv += ["--set=algorithm.schedule.unroll=2", "--set=algorithm.pipeline.reset_interval=3"]
    argv += ["--meta-steps", str(steps), "--no-evaluate", "--out"]

    def start(name):
        return subprocess.Popen([*argv, str(tmp_path / name)], stderr=subprocess.PIPE)

    def logged(name):
        log = tmp_path / name / "metrics.jsonl"
        return log.read_text().splitlines() if log.exists() else []

    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    runs = {"reference": start("reference"), **{s.name: start(s.name) for s in signals}}
    deadline = time.time() + 600
    lock = tmp_path / "reference" / "lock"
    while not (lock.exists() and lock.read_text()):  # taken before compiling: busy from now
        assert time.time() < deadline and runs["reference"].poll() is None
        time.sleep(0.01)
    busy = subprocess.run([*argv, str(tmp_path / "reference")], capture_output=True, text=True)
    assert busy.returncode == 2
    assert re.fullmatch(
        r"error: \S+ is in use by a running meta-training \(pid \d+ .*\n", busy.stderr
    )
    for s in signals:
        while len(logged(s.name)) < 3:
            assert time.time() < deadline and runs[s.name].poll() is None
            time.sleep(0.01)
        runs[s.name].send_signal(s)
    for s in signals:
        _, err = runs[s.name].communicate(timeout=300)
        if s == signal.SIGKILL:
            assert runs[s.name].returncode == -s
            continue
        assert runs[s.name].returncode == 128 + s
        last = err.decode().splitlines()[-1]
        step = int(
            re.fullmatch(r"interrupted at meta-step (\d+); run the same command to resume", last)[
                1
            ]
        )
        assert 3 <= step < steps and len(logged(s.name)) == step
        assert (tmp_path / s.name / "checkpoints" / f"step-{step:06d}.l2o").is_file()
    assert runs["reference"].wait(timeout=600) == 0
    reruns = {s.name: start(s.name) for s in signals}
    reference = l2orl.load(tmp_path / "reference" / "optimizer.l2o")
    for name, rerun in reruns.items():
        assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()
        assert [json.loads(line)["meta_step"] for line in logged(name)] == list(
            range(1, steps + 1)
        )
        resumed = l2orl.load(tmp_path / name / "optimizer.l2o")
        for x, y in zip(jax.tree.leaves(reference), jax.tree.leaves(resumed), strict=True):
            assert np.array_equal(x, y)  # bit for bit
