"""One process of a meta-training run over several processes on this machine's CPU
(`jax.distributed`, collectives over gloo), started by `test_distributed.py`:

    python tests/_distributed_worker.py PROCESS_ID N_PROCESSES PORT OUT_DIR

It meta-trains `build_training()` to 2 meta-steps in `OUT_DIR`, starts a run of another
configuration there (refused), then resumes the first run and continues it until some
process gets SIGTERM; a checkpoint at every meta-step, all kept. It prints one JSON line:
where the state lives, the meta-parameters after 2 meta-steps, the refusal and the
interruption."""

import json
import sys

import jax
import optax

import l2orl

SETTINGS = {"key": 7, "checkpoint_every": 1, "keep_checkpoints": 0, "progress": False}


def build_training(task_normalize: float | None = None) -> l2orl.TruncatedTraining:
    """Two quadratic tasks, one with 4 agents (split over 4 devices) and one with 2
    (replicated: 4 devices do not divide 2), a pipeline each, trained by TBPTT with plain
    SGD."""
    # Imported here, after `jax.distributed.initialize`: helpers makes a PRNG key when
    # imported, and no JAX computation may come before that call.
    from helpers import toy_optimizer
    from meta_helpers import QuadraticLearner

    tasks = (
        l2orl.MetaTask("split", QuadraticLearner(), None),
        l2orl.MetaTask("replicated", QuadraticLearner(dim=3), None),
    )
    return l2orl.TruncatedTraining(
        toy_optimizer(),
        tasks,
        pipeline=(l2orl.Pipeline(4, 3), l2orl.Pipeline(2, 2)),
        schedule=l2orl.ConstantTruncation(2),
        meta_optimizer=optax.sgd(0.1),
        task_normalize=task_normalize,
    )


def main(process_id: int, n_processes: int, port: int, out: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=n_processes, process_id=process_id
    )
    training = build_training()
    state = l2orl.meta_train(training, 2, out, **SETTINGS)
    age = state.agents[0].age
    report = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "agent_devices": len(age.sharding.device_set),
        "local_agent_shards": len(age.addressable_shards),
        "params": [x.tolist() for x in jax.tree.leaves(state.meta_params)],
        "replicated_agent_devices": len(state.agents[1].age.sharding.device_set),
        "agent_shapes": [list(a.age.shape) for a in state.agents],
    }
    # Another configuration in the same folder: process 0 refuses it, and so do the others.
    try:
        l2orl.meta_train(build_training(task_normalize=1.0), 4, out, **SETTINGS)
    except ValueError as error:
        report["refusal"] = str(error)
    # Resumes the first run and continues it until some process gets SIGTERM.
    try:
        l2orl.meta_train(training, 10**6, out, **SETTINGS)
    except l2orl.RunInterrupted as stopped:
        report["interrupted"] = {"meta_step": stopped.meta_step, "signal": stopped.signal}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
