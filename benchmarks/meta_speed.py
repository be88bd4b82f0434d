"""Meta-training speed and memory on the reference's configurations, against its figures.

    python benchmarks/meta_speed.py catch|big_dense_long [--steps 6] [--remat]
                                    [--agents-per-chunk C] [--coordinate-fraction P ...]
                                    [--agents N] [--fast-compile] [--low-memory]

Runs one configuration in a child process under `/usr/bin/time -v` (`benchmarks/_timing.py`),
through `l2orl.meta_train` (logging and checkpointing as a real run does): Optim4RL, TBPTT with K =
4 (`--agents-per-chunk C`: differentiated C agents at a time), 64 single-env A2C agents with
pipeline training (reset interval 32; `--agents N` for another count), by autodiff through the
unroll or, with `--coordinate-fraction P` (repeatable: one child per value, `none` for autodiff),
by coordinates with a sampled fraction `P`. Prints the time of the first meta-step and of its
compiling (tracing + XLA), how many times the meta-step was traced, the steady-state env-steps/s
over the following meta-steps, the child's peak RSS, and the ratio of env-steps/s to the reference
implementation's on a 2-core CPU of this kind (docs/reference.md, "Measured on the reference code":
Catch 3,078 env-steps/s and 4.38 GB; big_dense_long 867 env-steps/s and 10.1 GB). XLA options:
`--fast-compile` (LLVM at -O1, `xla_backend_optimization_level` 1) and `--low-memory` (XLA CPU's
older fusion emitters, `xla_cpu_use_fusion_emitters` off)."""

import argparse
import json
import sys

from _timing import run_with_peak_rss

REFERENCE = {"catch": (3078.0, 4.38), "big_dense_long": (867.0, 10.1)}

CHILD = """
import json, sys, tempfile
from pathlib import Path
import jax, optax
import l2orl, l2orl.rl as rl
name, steps, remat = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
chunk = int(sys.argv[4]) or None
options = json.loads(sys.argv[5]) or None
fraction = json.loads(sys.argv[6])
agents = int(sys.argv[7])
traces = []
class Counting(l2orl.TruncatedTraining):  # counts how often `meta_train` traces the step
    def step(self, state):
        traces.append(1)
        return super().step(state)
env_name = "Catch" if name == "catch" else name
learner = rl.default_learner(env_name, n_envs=1)
task = l2orl.MetaTask(name, learner, rl.make(env_name))
estimator = l2orl.TruncatedBPTT(remat, chunk, fraction)
algorithm = Counting(l2orl.optim4rl(), (task,), l2orl.Pipeline(agents, 32), estimator=estimator,
                     schedule=l2orl.ConstantTruncation(4),
                     meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-3)))
with tempfile.TemporaryDirectory() as out:
    l2orl.meta_train(algorithm, 1 + steps, out, progress=False, compiler_options=options)
    log = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
rate = sum(r["env_steps"] for r in log[1:]) / sum(r["seconds"] for r in log[1:])
print(json.dumps({"first_step_s": log[0]["seconds"], "compile_s": log[0]["compile_seconds"],
                  "traces": len(traces),
                  "env_steps_per_s": rate, "meta_loss": log[-1]["meta_loss"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(REFERENCE))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--remat", action="store_true")
    parser.add_argument("--agents-per-chunk", type=int, default=0, help="0: all at once")
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument(
        "--coordinate-fraction",
        action="append",
        help="a fraction in (0, 1] or 'none' (autodiff); repeat to compare",
    )
    parser.add_argument("--fast-compile", action="store_true", help="XLA CPU at LLVM -O1")
    parser.add_argument(
        "--low-memory", action="store_true", help="XLA CPU without its new fusion emitters"
    )
    args = parser.parse_args()
    options = {}
    if args.fast_compile:
        options["xla_backend_optimization_level"] = 1
    if args.low_memory:
        options["xla_cpu_use_fusion_emitters"] = False
    for fraction in args.coordinate_fraction or ["none"]:
        run_child(args, options, fraction)


def run_child(args: argparse.Namespace, options: dict, fraction: str) -> None:
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        args.config,
        str(args.steps),
        str(int(args.remat)),
        str(args.agents_per_chunk),
        json.dumps(options),
        json.dumps(None if fraction == "none" else float(fraction)),
        str(args.agents),
    ]
    stdout, peak_gb = run_with_peak_rss(cmd)
    result = json.loads(stdout.strip().splitlines()[-1])
    ref_rate, ref_gb = REFERENCE[args.config]
    chunk = args.agents_per_chunk or args.agents
    route = "autodiff" if fraction == "none" else f"coordinate_fraction={fraction}"
    print(
        f"{args.config}, {args.agents} agents, {route} (remat={args.remat}, {chunk} agents "
        f"per chunk, XLA options {options}), {args.steps} meta-steps"
    )
    first, traces, rate = result["first_step_s"], result["traces"], result["env_steps_per_s"]
    print(
        f"first meta-step: {first:.1f} s, of which compiling (trace + XLA) "
        f"{result['compile_s']:.1f} s; meta-step traced {traces}x"
    )
    print(f"steady state: {rate:,.0f} env-steps/s = {rate / ref_rate:.2f}x ref. ({ref_rate:,.0f})")
    print(f"peak RSS: {peak_gb:.2f} GB (reference {ref_gb} GB)", flush=True)


if __name__ == "__main__":
    main()
