"""Every signature format by name: its server half (builder) and client half."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache

from signgate.errors import ErrorCode, InvalidInput
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

# The parameters each format reads from a signing request (FormatRequest.params). Any other
# name is refused: a misspelt parameter silently ignored would sign something else than
# the caller meant.
PARAMS: dict[str, frozenset[str]] = {
    "openpgp": frozenset({"hashed", "type"}),
    # the file kind (formats/authenticode_files.py); absent: pe
    "authenticode": frozenset({"kind"}),
}


def check_params(name: str, params: Mapping[str, str]) -> None:
    """Refuse parameters that format ``name`` does not take, naming them (and an
    Authenticode file kind signgate does not know)."""
    known = PARAMS.get(name, frozenset())
    unknown = sorted(set(params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) if known else "none"
        raise InvalidInput(f"unknown parameter{'s' if len(unknown) > 1 else ''} for format "
                           f"{name}: {', '.join(unknown)} (it takes: {takes})",
                           code=ErrorCode.UNKNOWN_PARAMS, unknown=unknown)
    if name == "authenticode" and "kind" in params:
        from signgate.formats import authenticode_files  # only where a kind is named

        authenticode_files.kind(params["kind"])  # an unknown kind, refused by name


def _module_of(name: str) -> object:
    module = MODULES.get(name)
    if module is None:
        raise InvalidInput(f"unknown signature format {name!r}; expected one of "
                           f"{', '.join(NAMES)}", code=ErrorCode.UNKNOWN_FORMAT)
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
                           code=ErrorCode.UNSUPPORTED_FORMAT)
    return found
