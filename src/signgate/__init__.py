"""signgate: a self-hosted code-signing service."""

__version__ = "0.1.0"
