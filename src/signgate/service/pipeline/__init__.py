"""The signing pipeline: group commit, look-ups, and the steps authorize → produce →
record (see ``batch.py`` for how they compose)."""
