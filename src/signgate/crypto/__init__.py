"""Algorithms, digests and encodings: pure helpers with no I/O beyond reading a stream."""
