"""Certificates, and later CRLs and timestamps: pure builders, no database, no HTTP.

Everything that needs a signature gets it through a :class:`signgate.pki.cms.DigestSigner`,
so CA keys are used only through the key store's sign primitive.
"""
