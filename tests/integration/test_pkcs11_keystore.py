"""The PKCS#11 key store on a real SoftHSM2 token (tests/support/softhsm.py): every
algorithm generates on the token and signs what ``cryptography`` verifies, the security
attributes read back, one-time keys are destroyed for good, many threads sign at once,
lost sessions are re-opened, and a wrong PIN, a missing module or a removed token are one
clear sentence (fail closed)."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator

import PyKCS11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.crypto.signatures import rsa_padding_for
from signgate.errors import ConfigError, KeyStoreError, KeyStoreUnavailable
from signgate.keystore.base import KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.pkcs11 import Pkcs11KeyStore
from signgate.keystore.pkcs11_uri import parse
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore
from tests.support.softhsm import SoftHsm

MESSAGE = b"an artifact"


@pytest.fixture(scope="module")
def store(softhsm: SoftHsm) -> Iterator[Pkcs11KeyStore]:
    s = Pkcs11KeyStore("hsm", softhsm.module, "signgate", softhsm.pin)
    s.check()
    yield s
    s.close()


def _verify(pem: str, ref: KeyRef, digest_algorithm: DigestAlgorithm, message: bytes,
            signature: bytes) -> None:
    """Verify with ``cryptography`` alone (not signgate's helpers)."""
    public = serialization.load_pem_public_key(pem.encode())
    digest = hashlib.new(digest_algorithm.value, message).digest()
    prehashed = Prehashed(digest_algorithm.hash_algorithm())
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, digest, ec.ECDSA(prehashed))
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, digest)  # Ed25519 over the bytes given: the digest
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, digest, rsa_padding_for(ref.rsa_padding, digest_algorithm),
                      prehashed)


CASES = [(KeyAlgorithm.ECDSA_P256, RsaPadding.PSS), (KeyAlgorithm.ECDSA_P384, RsaPadding.PSS),
         (KeyAlgorithm.ED25519, RsaPadding.PSS), (KeyAlgorithm.RSA_3072, RsaPadding.PSS),
         (KeyAlgorithm.RSA_3072, RsaPadding.PKCS1V15), (KeyAlgorithm.RSA_4096, RsaPadding.PSS),
         (KeyAlgorithm.RSA_4096, RsaPadding.PKCS1V15)]


@pytest.mark.parametrize(("algorithm", "padding"), CASES)
def test_every_algorithm_signs_on_the_token(store: Pkcs11KeyStore, algorithm: KeyAlgorithm,
                                            padding: RsaPadding) -> None:
    generated = store.generate(algorithm)
    uri = parse(generated.uri)
    assert (uri.token, len(uri.id or b"")) == ("signgate", 16)
    public = serialization.load_pem_public_key(generated.public_key_pem.encode())
    expected = {KeyAlgorithm.ECDSA_P256: ec.EllipticCurvePublicKey,
                KeyAlgorithm.ECDSA_P384: ec.EllipticCurvePublicKey,
                KeyAlgorithm.ED25519: ed25519.Ed25519PublicKey}.get(algorithm,
                                                                    rsa.RSAPublicKey)
    assert isinstance(public, expected)
    if isinstance(public, rsa.RSAPublicKey):
        assert public.key_size == (3072 if algorithm is KeyAlgorithm.RSA_3072 else 4096)
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert public.curve.name == ("secp256r1" if algorithm is KeyAlgorithm.ECDSA_P256
                                     else "secp384r1")
    ref = KeyRef(generated.uri, algorithm, padding)
    for digest_algorithm in DigestAlgorithm:
        digest = hashlib.new(digest_algorithm.value, MESSAGE).digest()
        signature = store.sign(ref, digest_algorithm, digest)
        _verify(generated.public_key_pem, ref, digest_algorithm, MESSAGE, signature)
        with pytest.raises(InvalidSignature):
            _verify(generated.public_key_pem, ref, digest_algorithm, b"another", signature)
    # The security attributes, as `key show` reports them.
    assert store.attributes(ref).as_dict() == {
        "sensitive": True, "extractable": False, "never_extractable": True,
        "always_sensitive": True, "local": True}


def test_the_private_key_never_leaves_the_token(store: Pkcs11KeyStore,
                                                softhsm: SoftHsm) -> None:
    """Asked directly through the module, the token refuses the private value."""
    generated = store.generate(KeyAlgorithm.ECDSA_P256)
    lib = PyKCS11.PyKCS11Lib()
    lib.load(softhsm.module)
    slot = next(s for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.strip() == "signgate")
    session = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
    try:
        [handle] = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                                        (PyKCS11.CKA_ID, parse(generated.uri).id)])
        [flags] = session.getAttributeValue(handle, [PyKCS11.CKA_TOKEN])
        assert flags
        template = PyKCS11.LowLevel.ckattrlist(1)
        template[0].SetType(PyKCS11.CKA_VALUE)  # the private scalar
        rv = lib.lib.C_GetAttributeValue(session.session, handle, template)
        assert rv == PyKCS11.CKR_ATTRIBUTE_SENSITIVE
    finally:
        session.closeSession()


def test_a_one_time_key_is_a_session_object_destroyed_for_good(
        store: Pkcs11KeyStore) -> None:
    once = store.one_time_store()
    generated = once.generate(KeyAlgorithm.ECDSA_P256)
    ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P256)
    assert parse(generated.uri).object.startswith("signgate-once-")  # type: ignore[union-attr]
    digest = hashlib.sha256(MESSAGE).digest()
    _verify(generated.public_key_pem, ref, DigestAlgorithm.SHA256, MESSAGE,
            once.sign(ref, DigestAlgorithm.SHA256, digest))
    assert not store.attributes(ref).as_dict()["extractable"]
    [handle] = [h for s, h in [store._once[ref.uri]]]
    session = store._once[ref.uri][0].session
    [on_token] = session.getAttributeValue(handle, [PyKCS11.CKA_TOKEN])
    assert not on_token  # CKA_TOKEN=false: a session object
    once.destroy(ref)  # checks itself that the handle no longer signs
    with pytest.raises(PyKCS11.PyKCS11Error):
        session.sign(handle, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA))
    with pytest.raises(KeyStoreError, match="is not on token 'signgate'"):
        store.sign(ref, DigestAlgorithm.SHA256, digest)


def test_a_destroyed_token_key_no_longer_signs(store: Pkcs11KeyStore) -> None:
    generated = store.generate(KeyAlgorithm.ED25519)
    ref = KeyRef(generated.uri, KeyAlgorithm.ED25519)
    store.probe(ref)
    store.destroy(ref)
    with pytest.raises(KeyStoreUnavailable, match="is not on token 'signgate'"):
        store.sign(ref, DigestAlgorithm.SHA256, bytes(32))
    with pytest.raises(KeyStoreUnavailable):
        store.probe(ref)


def test_many_threads_sign_at_once_on_their_own_sessions(store: Pkcs11KeyStore) -> None:
    generated = store.generate(KeyAlgorithm.ECDSA_P256)
    ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P256)
    failures: list[BaseException] = []
    signatures: list[tuple[bytes, bytes]] = []
    start = threading.Barrier(16)

    def work(n: int) -> None:
        start.wait()
        try:
            for i in range(150):
                message = f"{n}-{i}".encode()
                digest = hashlib.sha256(message).digest()
                signatures.append((message, store.sign(ref, DigestAlgorithm.SHA256, digest)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert len(signatures) == 16 * 150
    for message, signature in signatures[::50]:
        _verify(generated.public_key_pem, ref, DigestAlgorithm.SHA256, message, signature)
    assert 1 < len(store._idle) <= 16  # a pool, not one session behind a lock


def test_lost_sessions_are_reopened_without_a_restart(store: Pkcs11KeyStore) -> None:
    generated = store.generate(KeyAlgorithm.ECDSA_P384)
    ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P384)
    digest = hashlib.sha384(MESSAGE).digest()
    store.sign(ref, DigestAlgorithm.SHA384, digest)
    before = store._generation
    # Every session of the slot closed under the store (the login ends with the last one).
    store._lib.closeAllSessions(store._slot)
    signature = store.sign(ref, DigestAlgorithm.SHA384, digest)
    _verify(generated.public_key_pem, ref, DigestAlgorithm.SHA384, MESSAGE, signature)
    assert store._generation == before + 1
    # Logged out by someone else: logged in again.
    store._anchor.logout()
    store.sign(ref, DigestAlgorithm.SHA384, digest)
    assert store._generation == before + 2


def test_two_tokens_two_stores_routed_by_token_label(store: Pkcs11KeyStore,
                                                      softhsm: SoftHsm) -> None:
    second = Pkcs11KeyStore("hsm2", softhsm.module, "second", softhsm.pin)
    soft = SoftwareKeyStore(bytes(32), InMemoryBlobs())
    registry = KeyStoreRegistry(soft, store, second,
                                names={"soft": soft, "hsm": store, "hsm2": second})
    try:
        made = {name: registry.generate(KeyAlgorithm.ECDSA_P256, store=name)
                for name in ("soft", "hsm", "hsm2")}
        assert parse(made["hsm2"].uri).token == "second"
        for name, generated in made.items():
            assert registry.store_name(generated.uri) == name
            ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P256)
            digest = hashlib.sha256(MESSAGE).digest()
            _verify(generated.public_key_pem, ref, DigestAlgorithm.SHA256, MESSAGE,
                    registry.sign(ref, DigestAlgorithm.SHA256, digest))
            assert (registry.attributes(ref) is None) == (name == "soft")
        with pytest.raises(ConfigError, match="no configured key store holds"):
            registry.for_uri("pkcs11:token=elsewhere;id=%01")
        # A key of one token is not found on the other.
        hsm2_key = KeyRef(made["hsm2"].uri, KeyAlgorithm.ECDSA_P256)
        with pytest.raises(KeyStoreError, match="is not a key of token 'signgate'"):
            store.sign(hsm2_key, DigestAlgorithm.SHA256, bytes(32))
    finally:
        second.close()


def test_a_wrong_pin_is_one_sentence_without_the_pin(softhsm: SoftHsm) -> None:
    pin = "99999999"
    with pytest.raises(ConfigError) as info:
        Pkcs11KeyStore("hsm", softhsm.module, "wrongpin", pin).check()
    assert str(info.value) == "key store 'hsm': cannot log in to the token 'wrongpin': wrong PIN"
    assert pin not in repr(Pkcs11KeyStore("hsm", softhsm.module, "wrongpin", pin))


def test_a_missing_module_or_token_is_one_sentence(softhsm: SoftHsm) -> None:
    with pytest.raises(ConfigError) as info:
        Pkcs11KeyStore("hsm", "/nonexistent/libpkcs11.so", "signgate", softhsm.pin).check()
    assert str(info.value) == ("key store 'hsm': the PKCS#11 module /nonexistent/libpkcs11.so "
                               "does not exist")
    with pytest.raises(ConfigError) as info:
        Pkcs11KeyStore("hsm", softhsm.module, "no-such-token", softhsm.pin).check()
    assert str(info.value) == (f"key store 'hsm': no token labelled 'no-such-token' in "
                               f"{softhsm.module}")
    not_a_module = softhsm.conf  # a file, but no shared object
    with pytest.raises(ConfigError, match=f"the PKCS#11 module {not_a_module} does not load"):
        Pkcs11KeyStore("hsm", str(not_a_module), "signgate", softhsm.pin).check()


def test_a_removed_token_fails_closed_and_the_rest_still_signs(store: Pkcs11KeyStore,
                                                                softhsm: SoftHsm) -> None:
    doomed = Pkcs11KeyStore("doomed", softhsm.module, "doomed", softhsm.pin)
    generated = doomed.generate(KeyAlgorithm.ECDSA_P256)
    ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P256)
    digest = hashlib.sha256(MESSAGE).digest()
    doomed.sign(ref, DigestAlgorithm.SHA256, digest)
    kept = store.generate(KeyAlgorithm.ECDSA_P256)
    shutil.rmtree(softhsm.token_dir("doomed"))
    for _ in range(2):  # and again: each signing tries to reconnect, none half-signs
        with pytest.raises(KeyStoreUnavailable) as info:
            doomed.sign(ref, DigestAlgorithm.SHA256, digest)
        assert info.value.code == "keystore_unavailable"
        assert "'doomed'" in str(info.value)
        assert softhsm.pin not in str(info.value)
    with pytest.raises(ConfigError, match="key store 'doomed': "):
        doomed.check()
    store.sign(KeyRef(kept.uri, KeyAlgorithm.ECDSA_P256), DigestAlgorithm.SHA256, digest)


def test_a_key_destroyed_elsewhere_is_found_missing_not_signed(store: Pkcs11KeyStore,
                                                               softhsm: SoftHsm) -> None:
    """Another store object (another server node) destroys the key: this one's cached
    handle names nothing any more, and it says so instead of signing."""
    generated = store.generate(KeyAlgorithm.ECDSA_P256)
    ref = KeyRef(generated.uri, KeyAlgorithm.ECDSA_P256)
    store.sign(ref, DigestAlgorithm.SHA256, bytes(32))  # the handle is cached now
    assert ref.uri in store._handles
    other = Pkcs11KeyStore("other", softhsm.module, "signgate", softhsm.pin)
    other.destroy(ref)
    with pytest.raises(KeyStoreUnavailable, match="is not on token 'signgate'"):
        store.sign(ref, DigestAlgorithm.SHA256, bytes(32))
    assert ref.uri not in store._handles


class CarelessToken(Pkcs11KeyStore):
    """Stands for a token that does not honour the template: it asks for an extractable,
    not sensitive key, which SoftHSM makes as asked."""

    @staticmethod
    def private_key_policy() -> list[tuple[int, bool]]:
        return [(PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SENSITIVE, False),
                (PyKCS11.CKA_EXTRACTABLE, True), (PyKCS11.CKA_SIGN, True)]


def _objects(store: Pkcs11KeyStore) -> int:
    return store._run("count objects", lambda s: len(s.session.findObjects([])))


def test_a_key_the_token_let_out_is_refused_and_destroyed(softhsm: SoftHsm) -> None:
    careless = CarelessToken("careless", softhsm.module, "second", softhsm.pin)
    try:
        before = _objects(careless)
        for algorithm in (KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ED25519):
            with pytest.raises(KeyStoreError) as info:
                careless.generate(algorithm)
            assert str(info.value) == (
                "the token 'second' did not keep the new key inside it (sensitive=False, "
                "extractable=True, never_extractable=False, always_sensitive=False): refused "
                "and destroyed")
        assert _objects(careless) == before  # neither the private nor the public key left
    finally:
        careless.close()
