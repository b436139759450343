"""Key stores: the one primitive, sign(digest) with a key that never leaves.

``base.KeyStore`` is the interface; ``soft.SoftwareKeyStore`` keeps keys sealed with
AES-256-GCM under a key-encryption key; ``registry`` picks the store for a key URI.
"""
