"""Ask a PKCS#11 token for the private key bytes of every private key on it, the way an
attacker holding the PIN would: ``python -m tests.support.token_probe MODULE TOKEN`` with
the PIN in ``SOFTHSM_TEST_PIN`` and ``SOFTHSM2_CONF`` set.

Run in a process of its own: SoftHSM reads ``SOFTHSM2_CONF`` once per process, and the
test process may already have loaded the module for another configuration.

Prints one JSON object: for each private key (by hex ``CKA_ID``) its type, its
``CKA_SENSITIVE``/``CKA_EXTRACTABLE``/``CKA_NEVER_EXTRACTABLE``, and for each secret
attribute (``CKA_VALUE`` for EC and EdDSA keys; the private exponent, primes, CRT
exponents and coefficient for RSA) the return value of ``C_GetAttributeValue`` by name
and the length of what it returned. ``control`` is the same question about a session key
made here with ``CKA_SENSITIVE`` false and ``CKA_EXTRACTABLE`` true: the token answers
it, so a refusal for signgate's keys means something.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import PyKCS11
from asn1crypto.keys import ECDomainParameters

from tests.support.softhsm import PIN_ENV

SECRET = {
    PyKCS11.CKK_EC: [PyKCS11.CKA_VALUE],
    PyKCS11.CKK_EC_EDWARDS: [PyKCS11.CKA_VALUE],
    PyKCS11.CKK_RSA: [PyKCS11.CKA_PRIVATE_EXPONENT, PyKCS11.CKA_PRIME_1,
                      PyKCS11.CKA_PRIME_2, PyKCS11.CKA_EXPONENT_1, PyKCS11.CKA_EXPONENT_2,
                      PyKCS11.CKA_COEFFICIENT],
}


def ask(session: Any, key: Any, attribute: int) -> dict[str, Any]:
    """``C_GetAttributeValue`` for one attribute, straight through (PyKCS11's own wrapper
    turns a refusal into None, hiding which refusal it was)."""
    template = PyKCS11.LowLevel.ckattrlist(1)
    template[0].SetType(attribute)
    rv = session.lib.C_GetAttributeValue(session.session, key, template)  # the size
    if rv == PyKCS11.CKR_OK:  # the wrapper reserved that much: now the value
        rv = session.lib.C_GetAttributeValue(session.session, key, template)
    length = len(template[0].GetBin()) if rv == PyKCS11.CKR_OK else 0
    return {"rv": PyKCS11.CKR[rv], "length": length}


def flags(session: Any, key: Any) -> dict[str, Any]:
    sensitive, extractable, never, key_type, key_id = session.getAttributeValue(
        key, [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE, PyKCS11.CKA_NEVER_EXTRACTABLE,
              PyKCS11.CKA_KEY_TYPE, PyKCS11.CKA_ID])
    secrets = {PyKCS11.CKA[a]: ask(session, key, a) for a in SECRET[key_type]}
    return {"type": PyKCS11.CKK[key_type], "id": bytes(key_id).hex(),
            "sensitive": bool(sensitive), "extractable": bool(extractable),
            "never_extractable": bool(never), "secrets": secrets}


def main(module: str, token: str) -> None:
    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slot = next(s for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.strip() == token)
    session = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
    session.login(os.environ[PIN_ENV])
    keys = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)])
    found = [flags(session, k) for k in keys]
    params = ECDomainParameters(name="named", value="secp256r1").dump()
    _, control = session.generateKeyPair(
        [(PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_EC_PARAMS, params)],
        [(PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SIGN, True),
         (PyKCS11.CKA_SENSITIVE, False), (PyKCS11.CKA_EXTRACTABLE, True)],
        PyKCS11.MechanismECGENERATEKEYPAIR)
    print(json.dumps({"keys": found, "control": flags(session, control)}))
    session.logout()
    session.closeSession()


if __name__ == "__main__":
    main(*sys.argv[1:3])
