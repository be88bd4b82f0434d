"""Meta-train Optim4RL on PPO agents in a brax environment, then test it from scratch against Adam.

    python examples/meta_train_brax.py [--env ant] [--backend spring] [--physics-gradient]
        [--agents 4] [--seeds 3] [--out out/meta_train_brax] [--smoke]

The reference's brax meta-training (docs/reference.md, "PPO on Brax"), on ant or humanoid:
2048 environments split over the agents (the reference runs one agent per device; 4 here,
staggered by the pipeline), 20-step rollouts, 8 minibatches, 4 epochs, the task's entropy
cost and reward scale, γ 0.97, clip ε 0.3, value loss 0.25, a policy MLP of 4 × 32 and a value
MLP of 5 × 64 swish units; Optim4RL at α = 3e-4 behind an element-wise clip at 1; K = 4 PPO
updates per meta-step, truncated BPTT by autodiff, meta-Adam 1e-4 behind an element-wise clip
at 1 (one point of the reference's sweep), reset interval 128, 610 meta-steps, `spring`
physics. With `--physics-gradient` the meta-gradient also flows through the simulator, as
the reference's does; by default it stops there. The learned optimizer is then used from
scratch by the reference's test PPO (1e8 steps, brax's default networks) against Adam 3e-4,
both behind the clip. That is GPU-sized: a 2-core CPU compiles one meta-step of brax PPO in
minutes. `--smoke` runs a tiny version on inverted_pendulum for CI."""

import argparse
import dataclasses
from pathlib import Path

import jax
import optax

import l2orl
import l2orl.rl as rl


@dataclasses.dataclass(frozen=True)
class Task:
    """A brax task's PPO settings (the reference's ant and humanoid)."""

    entropy_coef: float
    reward_scale: float
    test_envs: int  # the test PPO's environments
    test_rollout: int  # and its rollout length, for brax's batch size × minibatches × unroll
    test_epochs: int


TASKS = {
    "ant": Task(1e-2, 10.0, 4096, 80, 4),
    "humanoid": Task(1e-3, 0.1, 2048, 160, 8),
}


def meta_learner(task: Task, n_envs: int, smoke: bool) -> rl.PPO:
    """The reference's meta-training PPO agent (its smaller critic), or a tiny one."""
    if smoke:
        network = rl.NetworkSpec("mlp", (8,), "swish", value_hidden_sizes=(8,))
        return rl.PPO(
            n_envs=n_envs, rollout_length=4, n_epochs=1, n_minibatches=1, network=network
        )
    return rl.PPO(
        n_envs=n_envs,
        rollout_length=20,
        n_epochs=4,
        n_minibatches=8,
        gamma=0.97,
        clip_eps=0.3,
        value_coef=0.25,
        entropy_coef=task.entropy_coef,
        reward_scale=task.reward_scale,
        network=rl.NetworkSpec("mlp", (32,) * 4, "swish", value_hidden_sizes=(64,) * 5),
    )


def test_learner(task: Task, smoke: bool) -> rl.PPO:
    """The reference's test PPO with brax's default networks, or a tiny one."""
    if smoke:
        return meta_learner(task, 2, smoke)
    return dataclasses.replace(
        meta_learner(task, task.test_envs, smoke),
        rollout_length=task.test_rollout,
        n_epochs=task.test_epochs,
        n_minibatches=32,
        network=rl.NetworkSpec("mlp", (32,) * 4, "swish", value_hidden_sizes=(256,) * 5),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ant", choices=rl.BRAX_ENVS)
    parser.add_argument("--backend", default="spring", help="generalized, positional or spring")
    parser.add_argument(
        "--physics-gradient",
        action="store_true",
        help="back-propagate the meta-gradient through the simulator, as the reference",
    )
    parser.add_argument("--agents", type=int, default=4, help="agents; 2048 envs in all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/meta_train_brax"))
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    name = "inverted_pendulum" if args.smoke else args.env
    task = TASKS.get(name, TASKS["ant"])
    if args.smoke:
        agents, n_envs, interval, unroll, steps, episode, test_updates = 2, 2, 2, 1, 2, 4, 3
    else:
        agents, n_envs, interval, unroll, steps, episode = (
            args.agents,
            2048 // args.agents,
            128,
            4,
            610,
            1000,
        )
        test_updates = 100_000_000 // (task.test_envs * task.test_rollout)

    env = rl.make(
        f"brax:{name}",
        backend=args.backend,
        episode_length=episode,
        physics_gradient=args.physics_gradient,
    )
    meta_task = l2orl.MetaTask(name, meta_learner(task, n_envs, args.smoke), env, grad_clip=1.0)
    algorithm = l2orl.TruncatedTraining(
        l2orl.optim4rl(step_size=3e-4, key=jax.random.key(0)),
        (meta_task,),
        l2orl.Pipeline(agents, interval),
        estimator=l2orl.TruncatedBPTT(),
        schedule=l2orl.ConstantTruncation(unroll),
        meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-4)),
    )
    state = l2orl.meta_train(algorithm, steps, args.out / "run", progress=not args.smoke)
    learned = algorithm.optimizer_at(state)

    result = rl.compare(
        {"meta-trained Optim4RL": learned},
        f"brax:{name}",
        test_updates,
        lr=3e-4,
        baselines=("adam",),
        clip=optax.clip(1.0),
        learner=test_learner(task, args.smoke),
        env=rl.make(f"brax:{name}", backend=args.backend, episode_length=episode),
        seeds=args.seeds,
        progress=not args.smoke,
    )
    print(result.table())
    png = result.plot(args.out / f"{name}.png")
    data = result.to_json(args.out / f"{name}.json")
    print(f"wrote {png} and {data}")


if __name__ == "__main__":
    main()
