"""The `l2orl` command line: presets, meta-train, evaluate, plot."""

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

PRESETS = ("Optim4RL", "L2LGD2", "LinearOptim", "STAR")
ESTIMATORS = ("tbptt", "es", "pes")
PIPELINES = ("staggered", "random", "none")

# `l2orl meta-train` with no arguments: the embedded default (the reference's Catch setting).
FINAL_FRACTION = 0.05
"""The tail of each evaluation run that scores it (issue 4's protocol: the last 5 %)."""

META_TRAIN_DEFAULTS = {
    "env": ["Catch"],
    "optimizer": "Optim4RL",
    "step_size": 1e-3,
    "agent_clip": None,
    "reward_scale": None,
    "update_scale": None,
    "agents": 64,
    "unroll": 4,
    "reset_interval": 32,
    "pipeline": "staggered",
    "estimator": "tbptt",
    "agents_per_chunk": None,
    "low_memory": False,
    "meta_lr": 3e-3,
    "meta_clip": 1.0,
    "task_normalize": None,
    "meta_steps": 78,
    "seed": 0,
    "out": "runs/meta-train",
    "eval_seeds": 3,
    "eval_updates": 390,
}


_LOW_MEMORY_COMPILE = {"xla_cpu_use_fusion_emitters": False}
"""`MetaTrainer.run`'s `compiler_options` for `--low-memory`."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _presets(args: argparse.Namespace) -> int:
    import l2orl

    print(f"{'preset':<12} {'class':<24} meta-parameters")
    for name in PRESETS:
        optimizer = getattr(l2orl, name)()
        print(f"{name:<12} {type(optimizer).__name__:<24} {optimizer.n_meta_parameters}")
    return 0


def _settings(args: argparse.Namespace) -> dict:
    """The flags over the config file over the defaults; unknown config keys are errors."""
    settings = dict(META_TRAIN_DEFAULTS)
    if args.config is not None:
        loaded = json.loads(Path(args.config).read_text())
        unknown = sorted(set(loaded) - set(settings))
        if unknown:
            raise SystemExit(
                f"error: unknown keys {unknown} in {args.config}; valid keys: {sorted(settings)}"
            )
        if isinstance(loaded.get("env"), str):
            loaded["env"] = [loaded["env"]]
        settings.update(loaded)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    return settings


def _check_settings(s: dict) -> None:
    import l2orl.rl as rl

    for env in s["env"]:
        rl.make(env)  # raises, listing the available names
    if s["optimizer"] not in PRESETS:
        raise SystemExit(f"error: unknown optimizer {s['optimizer']!r}; expected one of {PRESETS}")
    if s["estimator"] not in ESTIMATORS or s["pipeline"] not in PIPELINES:
        raise SystemExit(
            f"error: estimator must be one of {ESTIMATORS} and pipeline one of {PIPELINES}"
        )
    for key in ("agents", "unroll", "reset_interval", "meta_steps", "eval_seeds", "eval_updates"):
        if not (isinstance(s[key], int) and s[key] > 0):
            raise SystemExit(f"error: {key} must be a positive int, got {s[key]!r}")
    for key in ("agent_clip", "meta_clip", "task_normalize"):
        if s[key] is not None and not (isinstance(s[key], int | float) and s[key] > 0):
            raise SystemExit(f"error: {key} must be positive or null, got {s[key]!r}")
    for key in ("reward_scale", "update_scale"):
        scales = s[key]
        if scales is not None and not (
            isinstance(scales, list)
            and len(scales) == len(s["env"])
            and all(isinstance(x, int | float) and x > 0 for x in scales)
        ):
            raise SystemExit(
                f"error: {key} must be null or a list of {len(s['env'])} positive numbers "
                f"(one per env {s['env']}), got {scales!r}"
            )
    if s["reward_scale"] is not None:
        for env in s["env"]:
            try:
                rl.make(env, reward_scale=1.0)
            except TypeError:
                raise SystemExit(
                    f"error: reward_scale is only for the gridworlds; {env!r} takes none"
                ) from None
    chunk = s["agents_per_chunk"]
    if chunk is not None and not (
        isinstance(chunk, int) and chunk > 0 and s["agents"] % chunk == 0
    ):
        raise SystemExit(
            f"error: agents_per_chunk must be null or a positive int dividing agents "
            f"({s['agents']}), got {chunk!r}"
        )
    if chunk is not None and s["estimator"] != "tbptt":
        raise SystemExit(
            f"error: agents_per_chunk is for the tbptt estimator, not {s['estimator']!r}"
        )
    if not isinstance(s["low_memory"], bool):
        raise SystemExit(f"error: low_memory must be true or false, got {s['low_memory']!r}")
    if not isinstance(s["seed"], int):
        raise SystemExit(f"error: seed must be an int, got {s['seed']!r}")
    for key in ("step_size", "meta_lr"):
        if not (isinstance(s[key], int | float) and s[key] > 0):
            raise SystemExit(f"error: {key} must be positive, got {s[key]!r}")


def make_trainer(s: dict, optimizer=None):
    """The `MetaTrainer` a settings dict describes (one task per env, one env per agent), for
    `optimizer` if given, else the preset `s["optimizer"]`."""
    import jax
    import optax

    import l2orl
    import l2orl.rl as rl

    n = len(s["env"])
    reward_scales = s["reward_scale"] or [None] * n
    update_scales = s["update_scale"] or [1.0] * n
    tasks = tuple(
        l2orl.MetaTask(
            env,
            rl.default_learner(env, n_envs=1),
            rl.make(env) if reward_scale is None else rl.make(env, reward_scale=reward_scale),
            l2orl.Pipeline(s["agents"], s["reset_interval"], s["pipeline"]),
            grad_clip=s["agent_clip"],
            update_scale=float(update_scale),
        )
        for env, reward_scale, update_scale in zip(
            s["env"], reward_scales, update_scales, strict=True
        )
    )
    estimator = {
        "tbptt": l2orl.TruncatedBPTT(agents_per_chunk=s["agents_per_chunk"]),
        "es": l2orl.TruncatedES(),
        "pes": l2orl.PES(),
    }[s["estimator"]]
    meta_optimizer = optax.adam(s["meta_lr"])
    if s["meta_clip"] is not None:
        meta_optimizer = optax.chain(optax.clip(s["meta_clip"]), meta_optimizer)
    if optimizer is None:
        optimizer = getattr(l2orl, s["optimizer"])(
            step_size=s["step_size"], key=jax.random.key(s["seed"])
        )
    return l2orl.MetaTrainer(
        optimizer, tasks, estimator=estimator, schedule=l2orl.ConstantTruncation(s["unroll"]),
        meta_optimizer=meta_optimizer, task_normalize=s["task_normalize"],
    )  # fmt: skip


def meta_train(settings: dict):
    """Check `settings` (keys of `META_TRAIN_DEFAULTS`), then meta-train into `settings["out"]`
    (resuming a run there); returns the `MetaTrainer` and its final `MetaState`."""
    _check_settings(settings)
    trainer = make_trainer(settings)
    out = Path(settings["out"])
    print(
        f"meta-training {settings['optimizer']} on {', '.join(settings['env'])} -> {out}",
        flush=True,
    )
    # The evaluation settings and the output folder do not change the run, so a resumed run
    # may evaluate differently.
    run_settings = {
        k: v for k, v in settings.items() if k not in ("out", "eval_seeds", "eval_updates")
    }
    state = trainer.run(
        settings["meta_steps"], out, key=settings["seed"], settings=run_settings,
        compiler_options=_LOW_MEMORY_COMPILE if settings["low_memory"] else None,
    )  # fmt: skip
    print(f"saved {out / 'optimizer.l2o'} ({int(state.skipped)} meta-steps skipped)")
    return trainer, state


def _meta_train(args: argparse.Namespace) -> int:
    settings = _settings(args)
    trainer, state = meta_train(settings)
    if args.no_evaluate:
        return 0
    optimizer, env = trainer.optimizer_at(state), settings["env"][0]
    return _compare(
        optimizer,
        env,
        settings["step_size"],
        settings["eval_seeds"],
        settings["eval_updates"],
        Path(settings["out"]),
        settings["agent_clip"],
    )


def _compare(
    optimizer, env_name: str, lr: float, seeds: int, updates: int, out: Path, clip=None
) -> int:
    import optax

    import l2orl.rl as rl

    optimizers = {
        "learned": optimizer.as_optax(),
        f"adam {lr:g}": optax.adam(lr),
        f"rmsprop {lr:g}": optax.rmsprop(lr),
    }
    if clip is not None:  # every optimizer sees the clipped gradients, as in meta-training
        optimizers = {f"clip({clip:g}) + {name}": optax.chain(optax.clip(clip), tx)
                      for name, tx in optimizers.items()}  # fmt: skip
    result = rl.evaluate(
        optimizers, rl.default_learner(env_name), rl.make(env_name), n_updates=updates,
        seeds=seeds, final_fraction=FINAL_FRACTION,
    )  # fmt: skip
    print(result.table())
    out.mkdir(parents=True, exist_ok=True)
    name = env_name.replace(":", "_")
    png, data = (
        result.plot(out / f"evaluate-{name}.png"),
        result.to_json(out / f"evaluate-{name}.json"),
    )
    print(f"wrote {png} and {data}")
    return 0


def load_optimizer(spec: str, step_size: float | None = None):
    """The learned optimizer `spec` names: a preset, a shipped optimizer or an `.l2o` file;
    with `step_size`, its `α` replaced."""
    optimizer = _named_optimizer(spec)
    if step_size is not None:
        optimizer = dataclasses.replace(optimizer, step_size=step_size)
    return optimizer


def _named_optimizer(spec: str):
    import l2orl

    if spec in PRESETS:
        return getattr(l2orl, spec)()
    if spec in l2orl.PRETRAINED:
        return l2orl.pretrained(spec)
    if Path(spec).is_file():
        return l2orl.load(spec)
    raise SystemExit(
        f"error: --optimizer {spec!r} is neither a checkpoint file, a preset {PRESETS} nor a "
        f"pretrained optimizer {tuple(l2orl.PRETRAINED)}"
    )


def _evaluate(args: argparse.Namespace) -> int:
    import l2orl.rl as rl

    optimizer = load_optimizer(args.optimizer, args.step_size)
    rl.make(args.env)  # a clear error for an unknown env before any compile
    return _compare(optimizer, args.env, args.lr, args.seeds, args.updates, Path(args.out))


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(args.metrics)
    if not path.is_file():
        raise SystemExit(f"error: no metrics log at {path}")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        raise SystemExit(f"error: {path} is empty")
    keys = (
        args.keys.split(",")
        if args.keys
        else ["meta_loss", *(k for k in records[0] if k.endswith("agent_return"))]
    )
    missing = [k for k in keys if k not in records[0]]
    if missing:
        raise SystemExit(f"error: {missing} not in the log; available: {sorted(records[0])}")
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(6, 2.5 * len(keys)), sharex=True, squeeze=False
    )
    steps = [r["meta_step"] for r in records]
    for ax, key in zip(axes[:, 0], keys, strict=True):
        ax.plot(steps, [r.get(key, math.nan) for r in records])  # compile_seconds: once
        ax.set_ylabel(key)
    axes[-1, 0].set_xlabel("meta-step")
    fig.tight_layout()
    out = Path(args.out) if args.out else path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="l2orl", description="Learning to optimize for RL.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("presets", help="list the preset learned optimizers").set_defaults(
        run=_presets
    )

    meta = commands.add_parser(
        "meta-train",
        help="meta-train a learned optimizer, then evaluate it against Adam and RMSProp",
        description="With no arguments: Optim4RL on Catch with pipeline training (64 agents, K=4, "
        "reset interval 32, 78 meta-steps), then an evaluation over 3 seeds.",
    )
    meta.add_argument(
        "--config", help="a JSON file of settings (keys as the flags, with underscores)"
    )
    meta.add_argument(
        "--env", action="append", help="a task env (repeat for multi-task); default Catch"
    )
    meta.add_argument("--optimizer", choices=PRESETS)
    meta.add_argument("--step-size", dest="step_size", type=_positive_float)
    meta.add_argument(
        "--agent-clip",
        dest="agent_clip",
        type=_positive_float,
        help="element-wise clip of the agents' gradients before the optimizer",
    )
    meta.add_argument("--agents", type=_positive_int)
    meta.add_argument("--unroll", type=_positive_int, help="inner updates K per meta-step")
    meta.add_argument("--reset-interval", dest="reset_interval", type=_positive_int)
    meta.add_argument("--pipeline", choices=PIPELINES)
    meta.add_argument("--estimator", choices=ESTIMATORS)
    meta.add_argument(
        "--agents-per-chunk", dest="agents_per_chunk", type=_positive_int,
        help="tbptt: differentiate this many agents at a time (less memory; default all)",
    )  # fmt: skip
    meta.add_argument(
        "--low-memory", dest="low_memory", action="store_true", default=None,
        help="compile with XLA CPU's older fusion emitters: a quarter of the compiler's "
        "memory, a meta-step about 9%% slower",
    )  # fmt: skip
    meta.add_argument("--meta-lr", dest="meta_lr", type=_positive_float)
    meta.add_argument(
        "--meta-clip",
        dest="meta_clip",
        type=_positive_float,
        help="element-wise clip of the meta-gradient",
    )
    meta.add_argument(
        "--task-normalize",
        dest="task_normalize",
        type=_positive_float,
        help="rescale each task's meta-gradient to this global norm before averaging",
    )
    meta.add_argument("--meta-steps", dest="meta_steps", type=_positive_int)
    meta.add_argument("--seed", type=int)
    meta.add_argument("--out")
    meta.add_argument("--eval-seeds", dest="eval_seeds", type=_positive_int)
    meta.add_argument("--eval-updates", dest="eval_updates", type=_positive_int)
    meta.add_argument("--no-evaluate", action="store_true")
    meta.set_defaults(run=_meta_train)

    evaluate = commands.add_parser(
        "evaluate", help="compare an optimizer with Adam and RMSProp on an env"
    )
    evaluate.add_argument(
        "--optimizer",
        required=True,
        help=f"a checkpoint (.l2o), a preset {PRESETS} or a pretrained optimizer's name",
    )
    evaluate.add_argument("--env", required=True)
    evaluate.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="the baselines' learning rate"
    )
    evaluate.add_argument(
        "--step-size",
        dest="step_size",
        type=_positive_float,
        help="the learned optimizer's step size α (default: its own)",
    )
    evaluate.add_argument("--seeds", type=_positive_int, default=3)
    evaluate.add_argument("--updates", type=_positive_int, default=390)
    evaluate.add_argument("--out", default="runs/evaluate")
    evaluate.set_defaults(run=_evaluate)

    plot = commands.add_parser(
        "plot", help="plot a meta-training metrics log (metrics.jsonl) to PNG"
    )
    plot.add_argument("metrics")
    plot.add_argument(
        "--keys", help="comma-separated metric names (default: meta_loss and returns)"
    )
    plot.add_argument("--out")
    plot.set_defaults(run=_plot)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
