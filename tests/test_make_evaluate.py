import json
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import l2orl
import l2orl.rl as rl


def test_make_our_gymnax_gridworld_and_brax_envs():
    assert isinstance(rl.make("small_dense_long"), rl.Gridworld)
    names = {
        f"{s}_{d}_{h}"
        for s in ("small", "big")
        for d in ("dense", "sparse")
        for h in ("short", "long")
    }
    assert set(rl.LAYOUTS) == names
    brax_env = rl.make("brax:fast", episode_length=7)
    assert isinstance(brax_env, rl.BraxEnv) and brax_env.default_params.max_steps_in_episode == 7
    assert rl.make("big_dense_long", reward_scale=10.0).reward_scale == 10.0
    catch = rl.make("Catch")
    assert catch.name == "Catch-bsuite" and catch.num_actions == 3
    assert rl.make("CartPole-v1").default_params.max_steps_in_episode == 500


def test_unknown_env_lists_the_available_names():
    with pytest.raises(
        ValueError, match=r"unknown environment 'CartPole-v9'; available: .*CartPole-v1.*brax:ant"
    ):
        rl.make("CartPole-v9")
    assert {"small_dense_long", "Catch", "Breakout-MinAtar", "brax:hopper"} <= set(rl.available())


def test_episode_length_override_truncates():
    env = rl.make("CartPole-v1", episode_length=3)
    assert isinstance(env, rl.ConfiguredEnv) and env.default_params.max_steps_in_episode == 3
    _, state = env.reset(jax.random.key(0))
    flags = []
    for i in range(3):
        _, state, _, terminated, truncated, _ = env.step(jax.random.key(i), state, 0)
        flags.append((bool(terminated), bool(truncated)))
    assert (
        flags[-1] == (False, True) or flags[-1][0]
    )  # pushed left thrice: truncation unless it fell
    with pytest.raises(ValueError, match="episode_length must be a positive int or None, got 0"):
        rl.make("Catch", episode_length=0)


def test_brax_env_names_match_brax():
    code = "import json, brax.envs; print(json.dumps(sorted(brax.envs._envs)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert sorted(rl.BRAX_ENVS) == json.loads(out.stdout.strip().splitlines()[-1])


_PLOTTING_SCRIPT = """
import sys, l2orl.rl
loaded = {"seaborn", "pandas", "scipy", "matplotlib.pyplot"} & set(sys.modules)
import gymnax.environments.bsuite.catch as catch, gymnax.environments.misc.pong as pong
import matplotlib.pyplot, seaborn
print(sorted(loaded), pong.sns.color_palette is seaborn.color_palette,
      catch.plt.subplots is matplotlib.pyplot.subplots)
"""


def test_gymnax_plotting_modules_load_only_when_used():
    """`import l2orl.rl` defers what gymnax imports only to render; gymnax's references
    reach the real modules once used, and a later import gets the real module."""
    out = subprocess.run(
        [sys.executable, "-c", _PLOTTING_SCRIPT], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["[]", "True", "True"]


def test_iqm_and_bootstrap_ci():
    x = np.asarray([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0])
    assert rl.iqm(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    lo, hi = rl.bootstrap_ci(np.asarray([1.0, 2.0, 3.0, 4.0]))
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert rl.bootstrap_ci(np.full(5, 0.7)) == pytest.approx((0.7, 0.7))
    # The 95% interval of the mean covers the truth in about 95% of repeated experiments.
    rng = np.random.default_rng(0)
    intervals = [
        rl.bootstrap_ci(rng.normal(size=30), n_resamples=2000, seed=i) for i in range(200)
    ]
    hits = sum(lo <= 0.0 <= hi for lo, hi in intervals)
    assert 0.88 <= hits / 200 <= 0.99


def test_final_returns_need_finished_episodes():
    curves = np.asarray([[0.0, np.nan, 1.0, 3.0], [1.0, 5.0, np.nan, np.nan]])
    # The second run finished none in its last half: its most recent finished update counts.
    np.testing.assert_allclose(rl.final_returns(curves, 0.5), [2.0, 5.0])
    np.testing.assert_allclose(rl.final_returns(curves, 0.25), [3.0, 5.0])
    with pytest.raises(ValueError, match="finished no episode"):
        rl.final_returns(np.asarray([[np.nan, np.nan]]), 0.5)


def test_evaluate_compares_optimizers(tmp_path, monkeypatch, capsys):
    learner = rl.A2C(n_envs=8, rollout_length=20, network=rl.NetworkSpec("mlp", (32,), "relu"))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # stderr counts as a terminal: the bar is drawn
    monkeypatch.setenv("COLUMNS", "200")  # on one line
    result = rl.evaluate(
        {"adam": optax.adam(1e-3), "optim4rl": l2orl.optim4rl()},
        learner,
        rl.make("Catch"),
        n_updates=10,
        seeds=2,
        final_fraction=0.5,
    )
    bar = capsys.readouterr().err
    assert "training" in bar and "2/2" in bar and "optim4rl: 2 seeds × 10 updates" in bar
    assert isinstance(result, rl.Evaluation)
    assert set(result.results) == {"adam", "optim4rl"}
    r = result.results["adam"]
    assert isinstance(r, rl.OptimizerResult)
    assert r.curves.shape == (2, 10) and r.final.shape == (2,)
    assert r.mean_ci[0] <= r.mean <= r.mean_ci[1]
    assert "| optim4rl |" in result.table()
    png = result.plot(tmp_path / "curves.png")
    assert png.stat().st_size > 1000
    data = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert data["results"]["adam"]["mean"] == pytest.approx(r.mean)
    with pytest.raises(ValueError, match="at least one optimizer"):
        rl.evaluate({}, learner, rl.make("Catch"), n_updates=2)


def test_evaluate_and_compare_name_what_is_not_an_optimizer():
    """The factory itself, not the optimizer it makes: a clear error before any training."""
    learner = rl.A2C(n_envs=1, rollout_length=2, network=rl.NetworkSpec("mlp", (4,), "relu"))
    message = r"optimizer 'o' is function .*not an optax transform .*did you mean optim4rl\(\)\?"
    with pytest.raises(ValueError, match=message):
        rl.evaluate({"o": l2orl.optim4rl}, learner, rl.make("Catch"), n_updates=2)
    with pytest.raises(ValueError, match=message):
        rl.compare({"o": l2orl.optim4rl}, "Catch", 2)
    with pytest.raises(ValueError, match=r"optimizer 'adam' is float 0.001, not an optax"):
        rl.compare({"adam": 1e-3}, "Catch", 2)
