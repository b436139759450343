"""Export a key version as an OpenPGP public key, self-certified through the key store.

The self-certification is a signature by the key, so it takes what signing with the key
takes (a signer grant, an active key) and is recorded as one: an audit entry with action
``signature.create`` and format ``openpgp-key``. It is deterministic (its creation time is
the key's), so exporting again gives the same key, fingerprint and certified user ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import KeyAlgorithm, RsaPadding
from signgate.formats import openpgp
from signgate.keystore.base import KeyRef
from signgate.policy import decide
from signgate.policy.model import Actor, KeySnapshot, KeyState
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.authorities import StoreSigner
from signgate.service.records.keys import get_key, get_version, refuse_signer, split_ref

FORMAT = "openpgp-key"


@dataclass(frozen=True)
class OpenPgpKeyView:
    key: str
    version: int
    fingerprint: str
    key_id: str
    user_id: str
    armored: str


def default_user_id(project: str, name: str) -> str:
    return f"{project}/{name} (signgate)"


def export_key(ctx: Context, caller: Caller, ref: str, version: int | None = None,
               user_id: str | None = None) -> OpenPgpKeyView:
    """The armored OpenPGP public key of ``ref``'s version (default: current)."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> OpenPgpKeyView:
        # Grants first, as for signing: a refusal must not tell whether the key exists.
        d = decide.may_sign_with(actor, project, name)
        if not d.allowed:
            refuse_signer(session, actor, project, name, d.reason)
        uid = openpgp.check_user_id(user_id if user_id is not None
                                    else default_user_id(project, name))
        key = get_key(session, project, name)
        algorithm = KeyAlgorithm(key.algorithm)
        padding = RsaPadding(key.rsa_padding)
        openpgp.refuse_unsupported(algorithm, padding, key.one_time)
        v = get_version(session, key, version)
        snapshot = KeySnapshot(
            project=project, name=name, state=KeyState(key.state),
            rotate_every=timedelta(days=key.rotate_every_days) if key.rotate_every_days
            else None,
            max_signatures=key.max_signatures, current_version=key.current_version,
            current_version_created=v.created_at, current_version_signatures=v.signature_count)
        d = decide.may_sign(actor, snapshot)
        require(d.allowed, d.reason)
        pgp_key = openpgp.key_of(v.public_key_pem, v.created_at)
        signer = StoreSigner(ctx.keystores, KeyRef(v.uri, algorithm, padding))
        armored = openpgp.export_public_key(pgp_key, uid, signer)
        fingerprint = pgp_key.fingerprint.hex().upper()
        ctx.record(session, Record(
            actor.name, Action.SIGN, Outcome.ALLOWED, ref, project, ref,
            {"format": FORMAT, "key_version": v.version, "user_id": uid,
             "fingerprint": fingerprint}))
        return OpenPgpKeyView(ref, v.version, fingerprint, pgp_key.key_id.hex().upper(), uid,
                              armored)

    return ctx.write(caller, Target(Action.SIGN, ref, project, ref), run)
