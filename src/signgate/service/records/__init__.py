"""The lower layer of service/: session helpers, one module per entity.

Each function takes an open session (and, to write, the context) and finds or creates
rows: a key, a version, a project, an identity, the root, an authority and its
certificate, a version's chain, the deny-list. The use cases of service/ (functions
``(ctx, caller, ...)``) build on these and never import one another; nothing here imports
a use case (enforced by the import-linter contracts in pyproject.toml).
"""
