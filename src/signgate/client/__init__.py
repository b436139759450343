"""The HTTP client library used by the CLI and by people's own scripts.

``SigngateClient`` is imported on first use (PEP 562): the command line's signing path
imports modules of this package without paying for httpx (cli/main.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signgate.client.client import SigngateClient

__all__ = ["SigngateClient"]


def __getattr__(name: str) -> Any:
    if name == "SigngateClient":
        from signgate.client.client import SigngateClient

        return SigngateClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
