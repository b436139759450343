"""Sign as ``ssh-keygen -Y sign -f KEY.pub`` would, with the signgate key whose public key
KEY.pub holds: what ``signgate-ssh-keygen`` (git's ``gpg.ssh.program``) does.

The OpenSSH public key names the signgate key by its comment (``signgate:PROJECT/NAME``,
as ``signgate key public P/N --ssh`` prints it); without one, the keys the caller can see
are asked for their public keys and compared. Either way the key's current version must be
the key in the line: a signature by another version would not verify against the
``allowed_signers`` entry the user made from that line. Only ``FILE.sig`` is written
(ssh-keygen's output); the receipt stays on the server's record.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from signgate.client.sign_file import SigningApi, sign_file
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import ErrorCode, InvalidInput, NotFound, SigngateError
from signgate.formats import sshsig
from signgate.formats.files import write_atomic


class SshSigningApi(SigningApi, Protocol):
    """The client calls this needs (a protocol: this module does not import the client)."""

    def list_keys(self, project: str | None = None) -> Any: ...


def _candidates(client: SshSigningApi) -> Iterator[str]:
    for key in client.list_keys():
        if key.get("state") == "active" and not key.get("one_time"):
            yield str(key["ref"])


def _current_blob(client: SshSigningApi, ref: str) -> bytes:
    view = client.public_key(ref)
    return sshsig.public_key_blob(sshsig.load_pem_key(str(view["public_key_pem"])))


def find_key(client: SshSigningApi, wanted: sshsig.OpenSshKey) -> str:
    """The signgate key (PROJECT/NAME) whose current version is ``wanted``."""
    fp = sshsig.fingerprint(wanted.blob)
    if wanted.ref is not None:
        if _current_blob(client, wanted.ref) != wanted.blob:
            raise InvalidInput(f"{fp} is not the current version of signgate key "
                               f"{wanted.ref} (rotated since it was exported?): export it "
                               f"again with 'signgate key public {wanted.ref} --ssh'",
                               code=ErrorCode.BAD_PUBLIC_KEY)
        return wanted.ref
    for ref in _candidates(client):
        try:
            if _current_blob(client, ref) == wanted.blob:
                return ref
        except SigngateError:
            continue
    raise NotFound(f"no signgate key you can see has the public key {fp}; export the key "
                   "line with 'signgate key public P/N --ssh'")


def sign_like_ssh_keygen(client: SshSigningApi, path: Path, wanted: sshsig.OpenSshKey,
                         namespace: str, digest: DigestAlgorithm, output: Path,
                         artifact_name: str | None = None) -> str:
    """Sign ``path`` for ``namespace`` with the key of ``wanted``; write the armored
    signature to ``output`` only. Returns the key's PROJECT/NAME."""
    sshsig.check_namespace(namespace)
    ref = find_key(client, wanted)
    with tempfile.TemporaryDirectory(prefix="signgate-ssh-") as tmp:
        signed = sign_file(client, path, ref, "sshsig", digest=digest,
                           output=Path(tmp) / "out.sig", artifact_name=artifact_name,
                           timestamp=False, params={"namespace": namespace})
        result = signed.signature_path.read_bytes()
    made = sshsig.parse(sshsig.dearmor(result))
    if made.public_blob != wanted.blob:  # rotated between the look-up and the signing
        raise InvalidInput(f"signgate key {ref} signed with another version than "
                           f"{sshsig.fingerprint(wanted.blob)}: export it again with "
                           f"'signgate key public {ref} --ssh'", code=ErrorCode.BAD_PUBLIC_KEY)
    write_atomic(output, result)
    return ref
