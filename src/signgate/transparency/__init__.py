"""The transparency core: a Merkle log that its owner cannot rewrite unseen.

Pure code, bytes in and bytes out (no I/O, no database, no web framework), so that an
offline verifier, the API, the audit log and the witness all run the same checks:

- ``merkle``: RFC 9162 / RFC 6962 hashing, a tree stored as append-only hashes (the design
  of Go's golang.org/x/mod/sumdb/tlog), inclusion and consistency proofs that read
  O(log n) stored hashes, and the plain RFC 9162 verification algorithms;
- ``tiles``: the C2SP tlog-tiles layout of those stored hashes and entry bundles;
- ``note``: C2SP signed notes (Ed25519), signing through a small protocol;
- ``checkpoint``: C2SP tlog-checkpoint, the signed tree head;
- ``cosignature``: C2SP tlog-cosignature, a witness's timestamped Ed25519 cosignature;
- ``proof``: the C2SP ``tlog-proof@v1`` text form of an offline-verifiable receipt;
- ``witness_protocol``: the bodies of C2SP tlog-witness ``add-checkpoint``.
"""
