import json

import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl
from l2orl import cli


def test_suites_name_their_tasks_and_fix_their_seeds():
    assert set(rl.SUITES) == {"validation", "test"}
    for name, suite in rl.SUITES.items():
        assert suite.name == name and len(suite) == len(suite.names) >= 4
        for task in suite:
            assert suite[task.name] is task
            assert 1 <= task.scored_updates == max(1, round(task.n_updates * rl.FINAL_FRACTION))
    validation, test = rl.SUITES["validation"], rl.SUITES["test"]
    assert {t.key for t in validation} == {100} and {t.key for t in test} == {0}
    assert rl.SUITES["test"] is test  # built once


def test_suite_select_keeps_the_order_asked_and_names_unknown_tasks():
    suite = rl.SUITES["validation"]
    picked = suite.select(["small_dense_short", "Catch"])
    assert picked.names == ("small_dense_short", "Catch") and picked.name == "validation"
    with pytest.raises(ValueError, match=r"'Pong'.*validation suite"):
        suite.select(["Pong"])
    with pytest.raises(KeyError):
        suite["Pong"]


def test_suite_task_checks_its_settings():
    learner = rl.default_learner("Catch")
    task = rl.SuiteTask("Catch", learner, 10, 1e-3, clip=0.5, clip_by="global_norm")
    assert isinstance(task.clip_transform(), optax.GradientTransformation)
    assert rl.SuiteTask("Catch", learner, 10, 1e-3).clip_transform() is None
    with pytest.raises(ValueError, match="lr must be positive"):
        rl.SuiteTask("Catch", learner, 10, 0.0)
    with pytest.raises(ValueError, match="clip_by must be one of"):
        rl.SuiteTask("Catch", learner, 10, 1e-3, clip_by="norm")
    with pytest.raises((TypeError, ValueError), match="learner"):  # type-checked in tests
        rl.SuiteTask("Catch", object(), 10, 1e-3)
    with pytest.raises(ValueError, match="n_updates"):
        rl.SuiteTask("Catch", learner, 0, 1e-3)
    with pytest.raises(ValueError, match="task twice"):
        rl.Suite("twice", (task, task))


def test_paired_difference_is_the_mean_of_seedwise_differences():
    a, b = np.array([3.0, 5.0, 4.0, 6.0]), np.array([1.0, 4.0, 4.0, 3.0])
    d = rl.paired_difference(a, b)
    assert isinstance(d, rl.PairedDifference)
    assert d.mean == pytest.approx(1.5) and d.ci[0] <= 1.5 <= d.ci[1]
    # Paired: a shift common to both sides of one seed leaves the difference unchanged.
    shift = np.array([100.0, -50.0, 7.0, 0.0])
    assert rl.paired_difference(a + shift, b + shift).mean == pytest.approx(d.mean)
    with pytest.raises(ValueError, match="match in shape"):
        rl.paired_difference(a, b[:3])


def test_evaluate_suite_scores_the_candidate_against_adam_and_its_baselines(tmp_path):
    result = rl.evaluate_suite(
        l2orl.optim4rl(),
        "validation",
        baselines={"untrained": l2orl.optim4rl()},
        tasks=["Catch"],
        seeds=2,
        n_updates=4,
        progress=False,
    )
    assert isinstance(result, rl.SuiteEvaluation) and list(result.tasks) == ["Catch"]
    catch = result.tasks["Catch"]
    assert isinstance(catch, rl.TaskEvaluation)
    assert set(catch.differences) == {"untrained", "adam 0.001"}
    # The same optimizer at the same α on the same seeds: the paired difference is zero.
    assert catch.differences["untrained"].mean == 0.0
    assert catch.adam.final.shape == catch.candidate.final.shape == (2,)
    assert catch.within_adam_ci_or_better == (catch.candidate.mean >= catch.adam.mean_ci[0])
    assert "| Catch |" in result.table()
    data = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert data["tasks"]["Catch"]["seeds"] == 2 and data["final_fraction"] == rl.FINAL_FRACTION
    # The report is built from its parts: a difference given by hand is what the table shows.
    mine = rl.TaskEvaluation(catch.task, catch.evaluation, {"adam 0.001": rl.PairedDifference(
        0.5, (0.1, 0.9)
    )})  # fmt: skip
    table = rl.SuiteEvaluation("mine", 2.0, {"Catch": mine}).table()
    assert table.startswith("mine suite") and "+0.500 [+0.100, +0.900]" in table


def test_evaluate_suite_refuses_bad_input_before_training():
    with pytest.raises(ValueError, match="unknown suite 'train'"):
        rl.evaluate_suite(l2orl.optim4rl(), "train")
    with pytest.raises(ValueError, match="must be an l2orl learned optimizer"):
        rl.evaluate_suite(l2orl.optim4rl(), "validation", baselines={"adam": optax.adam(1e-3)})
    with pytest.raises(ValueError, match="alpha_scale must be positive"):
        rl.evaluate_suite(l2orl.optim4rl(), "validation", alpha_scale=0.0)


def test_cli_evaluate_on_a_suite_refuses_env_only_flags(capsys):
    args = ["evaluate", "--optimizer", "Optim4RL", "--suite", "validation", "--lr", "1e-3"]
    assert cli.main(args) == 2
    assert "error: --lr: only with --env" in capsys.readouterr().err
    assert cli.main(["evaluate", "--optimizer", "Optim4RL", "--env", "Catch", "--tasks", "x"]) == 2
    assert "error: --tasks selects tasks of a --suite" in capsys.readouterr().err
