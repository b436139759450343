"""Signature formats built on the key store's one primitive: pure, no DB, no HTTP."""
