"""Meta-training speed and memory on the reference's configurations, against its figures.

    python benchmarks/meta_speed.py catch|big_dense_long [--steps 6] [--remat]

Runs one configuration in a child process under `/usr/bin/time -v`: Optim4RL, TBPTT with
K = 4, 64 single-env A2C agents with pipeline training (reset interval 32). Prints the time of
the first meta-step (compile included), how many times the meta-step was traced, the
steady-state env-steps/s over the following meta-steps, the child's peak RSS, and the ratio of
env-steps/s to the reference implementation's on a 2-core CPU of this kind (OPTIM4RL.md §10:
Catch 3,078 env-steps/s and 4.38 GB; big_dense_long 867 env-steps/s and 10.1 GB).
"""

import argparse
import json
import re
import subprocess
import sys

REFERENCE = {"catch": (3078.0, 4.38), "big_dense_long": (867.0, 10.1)}

CHILD = """
import json, sys, time
import equinox as eqx, jax, optax
import l2orl, l2orl.rl as rl
name, steps, remat = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
env_name = "Catch" if name == "catch" else name
learner = rl.default_learner(env_name, n_envs=1)
task = l2orl.MetaTask(name, learner, rl.make(env_name), l2orl.Pipeline(64, 32))
trainer = l2orl.MetaTrainer(l2orl.Optim4RL(), (task,), estimator=l2orl.TruncatedBPTT(remat=remat),
                            schedule=l2orl.ConstantTruncation(4),
                            meta_optimizer=optax.chain(optax.clip(1.0), optax.adam(1e-3)))
traces = []
def step(trainer, state):
    traces.append(1)
    return trainer.step(state)
step = eqx.filter_jit(step)
state = trainer.init(jax.random.key(0))
start = time.perf_counter(); state, m = step(trainer, state); jax.block_until_ready(m)
first = time.perf_counter() - start
env_steps, start = 0.0, time.perf_counter()
for _ in range(steps):
    state, m = step(trainer, state)
    env_steps += float(m["env_steps"])
rate = env_steps / (time.perf_counter() - start)
print(json.dumps({"first_step_s": first, "traces": len(traces), "env_steps_per_s": rate,
                  "meta_loss": float(m["meta_loss"])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(REFERENCE))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--remat", action="store_true")
    args = parser.parse_args()
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-c",
        CHILD,
        args.config,
        str(args.steps),
        str(int(args.remat)),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr[-4000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak_gb = (
        int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1e6
    )
    ref_rate, ref_gb = REFERENCE[args.config]
    print(f"{args.config} (remat={args.remat}), {args.steps} timed meta-steps")
    first, traces, rate = result["first_step_s"], result["traces"], result["env_steps_per_s"]
    print(f"first meta-step (compile + run): {first:.1f} s; meta-step traced {traces}x")
    print(f"steady state: {rate:,.0f} env-steps/s = {rate / ref_rate:.2f}x ref. ({ref_rate:,.0f})")
    print(f"peak RSS: {peak_gb:.2f} GB (reference {ref_gb} GB)")


if __name__ == "__main__":
    main()
