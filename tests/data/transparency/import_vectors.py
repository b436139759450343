"""Rebuild rfc6962_proofs.json from a checkout of github.com/transparency-dev/merkle.

    python tests/data/transparency/import_vectors.py /path/to/merkle

The vectors are that project's testdata/inclusion and testdata/consistency (Apache-2.0):
proofs over its 8-leaf RFC 6962 test tree, each a happy path or a mutation that must fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).with_name("rfc6962_proofs.json")


def main(repo: Path) -> None:
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    out: dict[str, object] = {
        "_source": f"github.com/transparency-dev/merkle testdata/ at {commit} (Apache-2.0): "
                   "RFC 6962 / RFC 9162 inclusion and consistency proof vectors over the "
                   "8-leaf test tree, happy paths and mutations. Regenerate with "
                   "tests/data/transparency/import_vectors.py.",
    }
    for kind in ("inclusion", "consistency"):
        cases = []
        for path in sorted((repo / "testdata" / kind).rglob("*.json")):
            case = json.loads(path.read_text())
            case["file"] = str(path.relative_to(repo / "testdata"))
            cases.append(case)
        out[kind] = cases
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
