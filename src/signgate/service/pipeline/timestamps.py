"""RFC 3161 tokens over signature values, as the key's policy or the caller asks."""

from __future__ import annotations

import hashlib
from datetime import datetime

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, KeyStoreError
from signgate.pki import certs
from signgate.pki import tsa as rfc3161
from signgate.service import external_tsa
from signgate.service.pipeline.work import Work
from signgate.service.records.authorities import (
    authority_certificate,
    authority_signer,
    tsa_authority,
)


def stamp(work: Work, signature: bytes, now: datetime) -> rfc3161.Issued:
    """An RFC 3161 token over the signature value from signgate's own TSA, as
    ``openssl ts -verify -data FILE.sig`` checks it (certReq: the TSA certificate is in
    the token). With ``tsa_urls`` configured, from the first external TSA that answers
    instead; that waits on the network inside the batch, which is the price of a public
    TSA."""
    settings = work.ctx.settings
    if settings.tsa_urls:
        token = external_tsa.fetch(settings.tsa_urls, signature)
        return rfc3161.Issued(token.der, token.serial, token.gen_time)
    if work.tsa is None:
        authority = tsa_authority(work.session)
        if authority is None:
            raise KeyStoreError("the time-stamp authority is not set up "
                                "(restart 'signgate serve')", code=ErrorCode.TSA_UNAVAILABLE)
        der = authority_certificate(work.session, authority).der
        tsas = work.lookups.cache.tsas
        known = (authority.key_uri, der, settings.tsa_policy_oid, settings.tsa_accuracy_seconds)
        work.tsa = tsas.get(known)
        if work.tsa is None:  # encoding the token template costs milliseconds: once
            work.tsa = rfc3161.Authority(
                authority_signer(work.ctx, authority), certs.load_der(der),
                settings.tsa_policy_oid, settings.tsa_accuracy_seconds)
            if len(tsas) >= 4:
                tsas.clear()
            tsas[known] = work.tsa
    request = rfc3161.own_request(DigestAlgorithm.SHA256, hashlib.sha256(signature).digest())
    return rfc3161.grant(request, work.tsa, now)
