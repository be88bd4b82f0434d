"""Estimator ablation: Optim4RL meta-trained by TBPTT, PES or truncated ES at equal compute.

    python examples/paper/ablate_estimator.py [--meta-seeds 2] [--seeds 3]
                                              [--out out/ablate_estimator] [--smoke]

The reference's Catch recipe (K = 4, reset interval 32, meta-Adam 1e-3 with element-wise clip
1, 78 meta-steps) with three meta-gradient estimators at the same number of environment steps
per meta-step: TBPTT with 64 agents, and the antithetic estimators (truncated ES, PES) with 32
agents, each running a + and a − perturbation (64 unrolls). Then A2C agents from scratch on
Catch for 5e5 env-steps with each, against Adam 1e-3. Writes results.json and results.png
(with each variant's meta-training wall time).
"""

from _ablation import meta_train, parse, report, test


def main() -> None:
    args = parse(__doc__, "out/ablate_estimator")
    variants, records = {}, {}
    for estimator, agents in (("tbptt", 64), ("pes", 32), ("es", 32)):
        settings = {"estimator": estimator, "agents": agents}
        variants[estimator], records[estimator] = meta_train(estimator, settings, args)
    n_updates = 6 if args.smoke else 390
    n_envs = 8 if args.smoke else None
    summary = test(variants, ("adam",), 1e-3, "Catch", n_updates, args, n_envs)
    report(
        "Estimator ablation (Optim4RL on Catch, equal env-steps)",
        {"Catch": summary},
        records,
        args,
    )


if __name__ == "__main__":
    main()
