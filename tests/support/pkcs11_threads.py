"""Sign from many threads at once, each thread on its own session, through one PKCS#11
binding: ``python -m tests.support.pkcs11_threads pykcs11|python-pkcs11 TOKEN PIN MODULE``.

Run in a process of its own (a binding that is not thread-safe may crash it), with
``SOFTHSM2_CONF`` set. Prints one JSON line: the binding, how many signatures were made,
and the errors the threads met (their type names).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable

THREADS = 8
SIGNATURES = 2000  # per thread
DIGEST = bytes(range(32))


def pykcs11_worker(module: str, token: str, pin: str, label: str) -> Callable[[], None]:
    import PyKCS11
    from asn1crypto.keys import ECDomainParameters

    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slot = next(s for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.strip() == token)
    login = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
    login.login(pin)
    params = ECDomainParameters(name="named", value="secp256r1").dump()
    login.generateKeyPair(
        [(PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_EC_PARAMS, params),
         (PyKCS11.CKA_LABEL, label)],
        [(PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SIGN, True),
         (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_LABEL, label)],
        PyKCS11.MechanismECGENERATEKEYPAIR)

    def work() -> None:
        session = lib.openSession(slot)
        try:
            [key] = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                                         (PyKCS11.CKA_LABEL, label)])
            for _ in range(SIGNATURES):
                session.sign(key, DIGEST, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA))
        finally:
            session.closeSession()

    return work


def python_pkcs11_worker(module: str, token: str, pin: str, label: str) -> Callable[[], None]:
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    found = pkcs11.lib(module).get_token(token_label=token)
    login = found.open(user_pin=pin, rw=True)
    params = login.create_domain_parameters(
        pkcs11.KeyType.EC,
        {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    params.generate_keypair(store=True, label=label)

    def work() -> None:
        session = found.open()
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
        for _ in range(SIGNATURES):
            key.sign(DIGEST, mechanism=pkcs11.Mechanism.ECDSA)

    return work


def main(binding: str, token: str, pin: str, module: str) -> None:
    make = pykcs11_worker if binding == "pykcs11" else python_pkcs11_worker
    work = make(module, token, pin, f"threads-{uuid.uuid4().hex[:8]}")
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def run() -> None:
        start.wait()
        try:
            work()
        except Exception as exc:
            with lock:
                errors.append(type(exc).__name__)
            return
        with lock:
            done[0] += SIGNATURES

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"binding": binding, "signatures": done[0], "errors": errors}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
