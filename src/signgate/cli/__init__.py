"""The command line: one command group per file; a client of the API, never of the database
(except the server-side commands in cli/server.py)."""
