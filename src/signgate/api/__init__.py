"""The HTTP API (FastAPI): parse, call one service function, render. Nothing else."""
