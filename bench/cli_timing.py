"""Wall and CPU time of command lines, for the benchmarks that set signgate's command
beside a local tool's (osslsigncode, jarsigner, openssl, gpg).

CPU time is the user + system time of the command's own process tree, read as the
``RUSAGE_CHILDREN`` delta around the run: a child counts once it has been waited for, so a
server started beside it (which is never reaped during the run) is not counted, on either
side. Best of N is taken separately for wall and CPU time (the quietest run of each), as
the machine is shared.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # seconds, user + system, of the command and its children

    def ratio(self, other: Timing) -> tuple[float, float]:
        return self.wall / other.wall, self.cpu / other.cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None,
        output: Path | None = None) -> Timing:
    """Run ``cmd`` once; refuse a failure (a benchmark of a failing command is no number).
    ``output`` (relative to ``cwd``) is removed first, untimed: no tool pays for replacing
    the file its previous run wrote (on ext4, a rename over a file flushes the new one)."""
    if output is not None:
        (cwd / output if cwd is not None else output).unlink(missing_ok=True)
    cpu = _children_cpu()
    start = time.perf_counter()
    out = subprocess.run(list(cmd), env=None if env is None else dict(env), cwd=cwd,
                         capture_output=True)
    wall = time.perf_counter() - start
    used = _children_cpu() - cpu
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({out.returncode}): "
                         f"{out.stdout.decode(errors='replace')}"
                         f"{out.stderr.decode(errors='replace')}")
    return Timing(wall, used)


def best(timings: Sequence[Timing]) -> Timing:
    """The smallest wall and the smallest CPU time of several runs."""
    return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))


def interleaved(runs: int, ours: Callable[[], Timing], theirs: Callable[[], Timing],
                before: Callable[[], None] | None = None) -> tuple[Timing, Timing]:
    """Best of ``runs`` of each, taking turns, so that a burst of load elsewhere on the
    machine hits both sides alike (one warm-up run of each first: page cache, caches)."""
    a: list[Timing] = []
    b: list[Timing] = []
    for i in range(runs + 1):
        for action, out in ((ours, a), (theirs, b)):
            if before is not None:
                before()
            timing = action()
            if i:
                out.append(timing)
    return best(a), best(b)


def load() -> str:
    """The 1-minute load average, to print beside the numbers."""
    return f"{os.getloadavg()[0]:.2f}"


def row(label: str, ours: Timing, theirs: Timing, target: float) -> str:
    """One line: both timings and both ratios, against the target ratio."""
    wall, cpu = ours.ratio(theirs)
    return (f"{label}: signgate {ours.wall:.3f} s wall / {ours.cpu:.3f} s CPU; "
            f"local {theirs.wall:.3f} s / {theirs.cpu:.3f} s; ratio wall {wall:.2f} "
            f"CPU {cpu:.2f} (target <= {target:.2f}); load {load()}")
