"""Why keystore/pkcs11.py uses PyKCS11: signing from 8 threads at once, each on its own
session of the same token (SoftHSM2), 2,000 signatures a thread, in a process of its own.

Measured when the binding was chosen (SoftHSM 2.6.1): PyKCS11 1.5.20 made all 16,000
signatures in each run; python-pkcs11 0.10.1 failed in each of three runs (GeneralError in
every thread, or the process died: segmentation fault, "double free or corruption"). The
second test keeps that reason under test: when python-pkcs11 stops failing, it fails, and
the choice can be revisited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.softhsm import SoftHsm


def _run(binding: str, softhsm: SoftHsm) -> tuple[int, dict[str, object] | None]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.pkcs11_threads", binding, "second", softhsm.pin,
         softhsm.module],
        env={**os.environ, **softhsm.env()}, capture_output=True, text=True, timeout=300,
        check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, json.loads(lines[-1]) if lines else None


def test_pykcs11_signs_from_eight_threads_on_their_own_sessions(softhsm: SoftHsm) -> None:
    for _ in range(2):
        code, result = _run("pykcs11", softhsm)
        assert code == 0
        assert result == {"binding": "pykcs11", "signatures": 8 * 2000, "errors": []}


def test_python_pkcs11_does_not(softhsm: SoftHsm) -> None:
    outcomes = []
    for _ in range(3):
        code, result = _run("python-pkcs11", softhsm)
        outcomes.append((code, result))
        if code != 0 or (result is not None and result["errors"]):
            return  # crashed, or threads failed: the reason for the choice still holds
    raise AssertionError(f"python-pkcs11 signed from 8 threads without failing: {outcomes}")
