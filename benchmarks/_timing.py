"""The benchmarks' one way to time: warm-up calls, interleaved repeats, medians, and peak RSS.

Every timed call ends in `jax.block_until_ready` on what it returns, so a figure is the
work's, not its dispatch's. Several calls timed together run round by round (one repeat of
each, then the next round), so that the machine's noise hits all of them alike.
"""

import dataclasses
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
    """A call's `first` time (its warm-up: compile included) and its `seconds` per call in
    each timed repeat (a repeat's wall time over its `number` calls)."""

    first: float
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)


def interleaved(
    calls: Mapping[str, tuple[Callable, Sequence]],
    *,
    rounds: int,
    number: int = 1,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Time each `name: (fn, args)` of `calls`: `warmup` calls each (the first one timed, as
    `first`), then `rounds` rounds in which each runs `number` times back to back, blocked
    on the last result. **Returns** a `Timing` per name."""
    if rounds < 1 or number < 1 or warmup < 1:
        raise ValueError(f"rounds, number and warmup must be ≥ 1: {rounds}, {number}, {warmup}")
    first = {}
    for name, (fn, args) in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        first[name] = time.perf_counter() - start
        for _ in range(warmup - 1):
            jax.block_until_ready(fn(*args))
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            for _ in range(number):
                out = fn(*args)
            jax.block_until_ready(out)
            seconds[name].append((time.perf_counter() - start) / number)
    return {name: Timing(first[name], tuple(seconds[name])) for name in calls}


def time_call(fn: Callable, *args, repeats: int = 5, number: int = 1) -> Timing:
    """`interleaved` for one call: `fn(*args)` warmed up once, then `repeats` repeats."""
    return interleaved({"call": (fn, args)}, rounds=repeats, number=number)["call"]


def peak_rss_gb() -> float:
    """This process's peak resident set size so far, in GB (`getrusage`; Linux: KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def run_with_peak_rss(cmd: Sequence[str]) -> tuple[str, float]:
    """Run `cmd` under `/usr/bin/time -v`; **returns** its stdout and its peak RSS in GB.
    Exits with the tail of its stderr if it fails."""
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr[-4000:])
    kbytes = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return out.stdout, int(kbytes.group(1)) / 1e6
