"""Pipeline ablation: Optim4RL meta-trained with staggered resets, random offsets, or none.

    python examples/paper/ablate_pipeline.py [--envs small_dense_long big_dense_long]
                                             [--meta-steps 150] [--agents 64] [--reset-interval 72]
                                             [--meta-seeds 2] [--seeds 3]
                                             [--agents-per-chunk C]
                                             [--out out/ablate_pipeline] [--smoke]

On each gridworld, meta-trains Optim4RL (α = 3e-3, agent gradients clipped at 1 as the
reference does on gridworlds) with 64 single-env A2C agents (`--agents`), TBPTT with K = 4,
reset interval 72 (the reference's smallest; `--reset-interval`), under the three pipeline
kinds of `l2orl.Pipeline`: `staggered` (the reference's rule), `random` offsets, and `none`
(agents never reset). Then trains A2C
agents (512 envs, the reference's test setting) from scratch on the same gridworld with each
meta-trained optimizer and with Adam 3e-3, all behind clip(1). The reference meta-trains for
585 meta-steps and tests for 3e7 env-steps; the defaults here are CPU-sized (stated in the
output). Writes results.json and results.png.
"""

from _ablation import meta_train, parse, report, test

TEST_UPDATES = {"small_dense_long": 488, "big_dense_long": 98}  # 5e6 and 1e6 env-steps


def main() -> None:
    args = parse(
        __doc__,
        "out/ablate_pipeline",
        extra=[
            ("--envs", dict(nargs="+", default=["small_dense_long", "big_dense_long"])),
            ("--meta-steps", dict(type=int, default=150)),
            ("--agents", dict(type=int, default=64)),
            ("--reset-interval", dict(type=int, default=72)),
        ],
    )
    summaries, records = {}, {}
    envs = args.envs[:1] if args.smoke else args.envs
    for env in envs:
        variants = {}
        for kind in ("staggered", "random", "none"):
            settings = {
                "env": [env],
                "pipeline": kind,
                "agents": args.agents,
                "reset_interval": args.reset_interval,
                "step_size": 3e-3,
                "agent_clip": 1.0,
                "meta_steps": args.meta_steps,
            }
            name = f"{env} {kind}"
            variants[kind], records[name] = meta_train(name, settings, args)
        # Gridworld episodes last 500 steps: a smoke run must still end some in its last 10 %.
        n_updates = 50 if args.smoke else TEST_UPDATES[env]
        n_envs = 8 if args.smoke else None
        summaries[env] = test(variants, ("adam",), 3e-3, env, n_updates, args, n_envs, clip=1.0)
    report("Pipeline ablation (Optim4RL)", summaries, records, args)


if __name__ == "__main__":
    main()
