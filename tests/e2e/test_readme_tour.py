"""The README's five-minute tour runs as written, in order, and prints what it shows.

The tour's shell block is taken from README.md and run by one bash process (so its
variables carry from command to command) in a fresh directory beside a fresh server's
`signgate-data`. Each line shown under a command as `#   …` is what that command prints
(stdout and stderr together); `…` stands for any text, runs of spaces for any spacing, and
a trailing `(exit N)` for the exit status (0 when none is shown). A tour that drifts from
the product fails here, not in front of a new user.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.server import Server, start_server

README = Path(__file__).resolve().parents[2] / "README.md"
_EXIT = re.compile(r"\s+\(exit (\d+)\)$")
_MARK = "@@tour-step@@"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


def tour_steps(readme: str) -> list[Step]:
    section = readme[readme.index("## Five-minute tour"):]
    block = section[section.index("```sh\n") + len("```sh\n"):]
    block = block[:block.index("```")]
    steps: list[Step] = []
    for line in block.splitlines():
        if line.startswith("#   "):
            shown = line[4:].rstrip()
            m = _EXIT.search(shown)
            if m:
                steps[-1].exit_code = int(m.group(1))
                shown = shown[:m.start()]
            steps[-1].expected.append(shown)
        elif line.strip() and not line.startswith("#"):
            steps.append(Step(line))
    return steps


def _pattern(shown: str) -> re.Pattern[str]:
    parts = [r"\s+".join(re.escape(w) for w in chunk.split()) for chunk in shown.split("…")]
    return re.compile(r"\s*" + r".*?".join(parts) + r"\s*")


def test_tour_parses() -> None:
    steps = tour_steps(README.read_text())
    assert len(steps) > 15
    assert any(s.exit_code == 4 for s in steps)
    assert any(s.exit_code == 8 for s in steps)
    assert _pattern("a … b   c").fullmatch("a xyz b c")
    assert not _pattern("a … b c").fullmatch("a xyz b d")


@pytest.fixture
def tour_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "signgate-data", None)
    try:
        yield srv
    finally:
        srv.stop()


def test_readme_tour_runs_as_written(tour_server: Server, tmp_path: Path) -> None:
    steps = tour_steps(README.read_text())
    script = ["set -u"]
    for i, step in enumerate(steps):
        script += [f"echo '{_MARK} {i}'", "{", step.command, "} 2>&1", f"echo '{_MARK} rc' $?"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SIGNGATE_URL"] = tour_server.url
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    outputs: dict[int, tuple[list[str], int]] = {}
    current: int | None = None
    lines: list[str] = []
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK + " rc "):
            assert current is not None
            outputs[current] = (lines, int(line.split()[-1]))
            current, lines = None, []
        elif line.startswith(_MARK + " "):
            current, lines = int(line.split()[-1]), []
        else:
            lines.append(line)
    assert sorted(outputs) == list(range(len(steps))), proc.stdout

    for i, step in enumerate(steps):
        printed, rc = outputs[i]
        shown = "\n".join(printed)
        assert rc == step.exit_code, f"`{step.command}` exited {rc}:\n{shown}"
        rest = iter(printed)  # each shown line matches a printed line, in order
        for expected in step.expected:
            pattern = _pattern(expected)
            assert any(pattern.fullmatch(p) for p in rest), (
                f"`{step.command}` printed:\n{shown}\nwhich has no line like:\n{expected}")
