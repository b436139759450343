"""The witness: a small server that cosigns a log's checkpoints (C2SP tlog-witness).

An organisation runs it on another machine than signgate, with its own Ed25519 key and its
own state in its data directory, and no access to signgate's database. It cosigns a
checkpoint only if it is consistent with the last one it cosigned for that log, so a log
owner who rewrites history cannot get the rewrite cosigned.

- ``store``: the data directory (key, configured logs, per-log state written atomically);
- ``decide``: the checks of an add-checkpoint request, pure;
- ``app``: the HTTP interface.
"""
