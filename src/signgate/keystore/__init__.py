"""Key stores: the one primitive, sign(digest) with a key that never leaves.

``base.KeyStore`` is the interface (``KeyRef`` names a key); ``soft.SoftwareKeyStore``
keeps keys sealed with AES-256-GCM under a key-encryption key, in the ``blobs.SealedBlobs``
repository it is given; ``registry`` picks the store for a key URI and keeps foreign
errors from crossing it.
"""
