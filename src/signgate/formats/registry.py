"""Every signature format by name: its server half (builder) and client half."""

from __future__ import annotations

import importlib
from functools import cache

from signgate.errors import InvalidInput
from signgate.formats.base import Builder, ClientFormat, Verifier

# name -> module exposing BUILDER and CLIENT
MODULES = {
    "raw": "signgate.formats.raw",
    "cms": "signgate.formats.cms",
    "authenticode": "signgate.formats.authenticode",
    "jar": "signgate.formats.jar",
    "openpgp": "signgate.formats.openpgp",
    "dsse": "signgate.formats.dsse",
    "sigstore": "signgate.formats.sigstore",
}
NAMES = tuple(MODULES)


def _module_of(name: str) -> object:
    module = MODULES.get(name)
    if module is None:
        raise InvalidInput(f"unknown signature format {name!r}; expected one of "
                           f"{', '.join(NAMES)}", code="unknown_format")
    return importlib.import_module(module)


@cache
def builder(name: str) -> Builder:
    found: Builder = getattr(_module_of(name), "BUILDER")  # noqa: B009
    return found


@cache
def client(name: str) -> ClientFormat:
    found: ClientFormat = getattr(_module_of(name), "CLIENT")  # noqa: B009
    return found


@cache
def verifier(name: str) -> Verifier:
    found: Verifier | None = getattr(_module_of(name), "VERIFIER", None)
    if found is None:
        raise InvalidInput(f"signgate cannot verify {name} signatures yet",
                           code="unsupported_format")
    return found
