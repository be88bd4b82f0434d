"""Meta-training over two processes (`jax.distributed` on this machine's CPU, 2 devices
each) against the same run in this process, on one device."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

import l2orl
from _distributed_worker import SETTINGS, build_training

WORKER = Path(__file__).with_name("_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _meta_params(path: Path, like: l2orl.TruncatedState) -> list[np.ndarray]:
    state = l2orl.load_tree(path, like=like)
    return [np.asarray(x) for x in jax.tree.leaves(state.meta_params)]


@pytest.mark.slow
def test_two_processes_meta_train_as_one_process(tmp_path):
    """Two processes × 2 CPU devices: the agents split over all 4; after 2 meta-steps the
    same meta-parameters on both processes, as one process on one device gets; a resumed
    run with the same checkpoints as an uninterrupted one; one log and one set of
    checkpoints, written by process 0; a configuration process 0 refuses is refused on
    both; SIGTERM to process 1 alone stops both after the same meta-step."""
    training = build_training()
    like = training.init(jax.random.key(SETTINGS["key"]))
    l2orl.meta_train(training, 3, tmp_path / "one", **SETTINGS)

    out, port = tmp_path / "two", _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    logs = [tmp_path / f"process-{i}.log" for i in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), "2", str(port), str(out)],
            cwd=WORKER.parent,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs)
    ]
    try:
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 5):
            for p, log in zip(processes, logs, strict=True):
                assert p.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        processes[1].send_signal(signal.SIGTERM)
        for p, log in zip(processes, logs, strict=True):
            assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        for p in processes:
            p.kill()
    reports = [json.loads(log.read_text().strip().splitlines()[-1]) for log in logs]

    reference = _meta_params(tmp_path / "one" / "checkpoints" / "step-000002.l2o", like)
    for i, report in enumerate(reports):
        assert (report["process"], report["processes"], report["devices"]) == (i, 2, 4)
        assert (report["agent_devices"], report["local_agent_shards"]) == (4, 2)
        assert report["replicated_agent_devices"] == 4  # all 4 hold both of its 2 agents
        assert report["agent_shapes"] == [[4], [2]]  # each task's agents by its pipeline
        assert report["params"] == reports[0]["params"]  # one meta-gradient for both
        for a, b in zip(reference, report["params"], strict=True):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-7)
    assert "holds a run with another configuration" in reports[0]["refusal"]
    assert reports[1]["refusal"] == f"process 0 refused the run in {out}; its error says why"
    stopped = reports[0]["interrupted"]
    assert stopped["meta_step"] >= 5 and stopped["signal"] == signal.SIGTERM
    assert reports[1]["interrupted"] == stopped

    # Process 0 alone wrote the log, one line per meta-step, and the checkpoints: those of
    # the resumed run read back here, in a third process, as the one-process run's.
    steps = [json.loads(line)["meta_step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, stopped["meta_step"] + 1))
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved == [f"step-{i:06d}.l2o" for i in range(1, stopped["meta_step"] + 1)]
    for a, b in zip(
        _meta_params(tmp_path / "one" / "checkpoints" / "step-000003.l2o", like),
        _meta_params(out / "checkpoints" / "step-000003.l2o", like),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    optimizer = l2orl.load(out / "optimizer.l2o")  # written at the end of the run to 2
    params = jax.tree.leaves(eqx.filter(optimizer, eqx.is_inexact_array))
    assert [x.tolist() for x in params] == reports[0]["params"]
