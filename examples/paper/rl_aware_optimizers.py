"""RL-aware learned optimizers: OPEN-like and VeLO-like against Optim4RL, meta-trained on Catch.

    python examples/paper/rl_aware_optimizers.py [--meta-seeds 2] [--seeds 3]
                                                 [--out out/rl_aware_optimizers] [--smoke]

All three are meta-trained the same way on Catch with PPO agents (so that every input of the
OPEN-like optimizer is live: training proportion under a staggered pipeline, PPO's batch
proportion, the ReLU torso's dormancy, tensor roles and depths, and its learned noise on the
actor): 16 agents of 4 envs × 16 steps, 2 epochs of 2 minibatches per update, reset interval
32, K = 4, meta-Adam 1e-3 with element-wise clip 1, 78 meta-steps. Optim4RL and OPEN-like use
TBPTT by a sampled 1/16 of the coordinates; the VeLO-like hypernetwork, whose per-tensor state
couples coordinates, uses autodiff TBPTT. Each meta-trained optimizer then trains PPO agents
from scratch on Catch (16 envs × 32 steps, 4 epochs of 4 minibatches, 200 updates), against
Adam 1e-3 and each optimizer's own untrained initialisation. Writes results.json and
results.png.
"""

import time

import jax
import optax
from _ablation import parse, report, test

import l2orl
import l2orl.rl as rl

PRESETS = {"Optim4RL": l2orl.optim4rl, "OPEN-like": l2orl.open_like, "VeLO-like": l2orl.velo_like}


def meta_learner(smoke: bool) -> rl.PPO:
    net = rl.NetworkSpec("mlp", (256,), "relu")
    if smoke:
        return rl.PPO(n_envs=2, rollout_length=4, n_epochs=1, n_minibatches=2, network=net)
    return rl.PPO(n_envs=4, rollout_length=16, n_epochs=2, n_minibatches=2, network=net)


def test_learner(smoke: bool) -> rl.PPO:
    net = rl.NetworkSpec("mlp", (256,), "relu")
    if smoke:  # long enough that Catch episodes (9 steps) end
        return rl.PPO(n_envs=2, rollout_length=10, n_epochs=1, n_minibatches=2, network=net)
    return rl.PPO(n_envs=16, rollout_length=32, n_epochs=4, n_minibatches=4, network=net)


def meta_train(name: str, seed: int, env, args) -> tuple[l2orl.AbstractLearnedOptimizer, dict]:
    agents, interval, steps, unroll = (4, 2, 2, 1) if args.smoke else (16, 32, 78, 4)
    optimizer = PRESETS[name](key=jax.random.key(seed))
    fraction = None if name == "VeLO-like" else 1 / 16
    task = l2orl.MetaTask("catch-ppo", meta_learner(args.smoke), env)
    algorithm = l2orl.TruncatedTraining(
        optimizer,
        (task,),
        l2orl.Pipeline(agents, interval),
        estimator=l2orl.TruncatedBPTT(coordinate_fraction=fraction),
        schedule=l2orl.ConstantTruncation(unroll),
        meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-3)),
    )
    start = time.perf_counter()
    out = args.out / "runs" / f"{name}-seed{seed}"
    state = l2orl.meta_train(algorithm, steps, out, key=seed, progress=False)
    seconds = time.perf_counter() - start
    print(f"meta-trained {name} (seed {seed}) in {seconds:.0f} s", flush=True)
    record = {"meta_seed": seed, "seconds": seconds, "skipped": int(state.skipped)}
    return algorithm.optimizer_at(state), record


def main() -> None:
    args = parse(__doc__, "out/rl_aware_optimizers")
    env = rl.make("Catch")
    variants, records = {}, {}
    for name, preset in PRESETS.items():
        runs = [meta_train(name, seed, env, args) for seed in range(args.meta_seeds)]
        variants[name] = [optimizer for optimizer, _ in runs]
        records[name] = [record for _, record in runs]
        variants[f"{name} (untrained)"] = [preset(key=jax.random.key(0))]
    n_updates = 4 if args.smoke else 200
    summary = test(
        variants, ("adam",), 1e-3, "Catch", n_updates, args, learner=test_learner(args.smoke)
    )
    report("RL-aware optimizers (meta-trained on Catch, PPO)", {"Catch": summary}, records, args)


if __name__ == "__main__":
    main()
