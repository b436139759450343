"""The HTTP client library used by the CLI and by people's own scripts."""

from signgate.client.client import SigngateClient

__all__ = ["SigngateClient"]
