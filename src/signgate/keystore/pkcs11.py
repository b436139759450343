"""Keys generated and used inside a PKCS#11 token (an HSM, or SoftHSM2 in tests).

Keys are named by RFC 7512 URIs (``pkcs11_uri.py``): ``pkcs11:token=T;id=%..;object=L``.
Private keys are made on the token with ``CKA_TOKEN``, ``CKA_PRIVATE``, ``CKA_SENSITIVE``,
``CKA_SIGN`` true and ``CKA_EXTRACTABLE`` false, then ``CKA_NEVER_EXTRACTABLE``,
``CKA_ALWAYS_SENSITIVE`` and ``CKA_LOCAL`` are read back: a token that did not honour
the template gets its objects destroyed and the key refused. Private key bytes never cross
the module boundary; the public key is rebuilt from ``CKA_EC_POINT``/``CKA_EC_PARAMS`` or
``CKA_MODULUS``/``CKA_PUBLIC_EXPONENT`` (as PEM, by ``cryptography``).

Signing follows ``base.KeyStore.sign``: ECDSA is ``CKM_ECDSA`` over the digest (the raw
``r||s`` the token returns becomes a DER ``Ecdsa-Sig-Value``); RSA-PSS is
``CKM_RSA_PKCS_PSS`` over the digest (salt = digest length, MGF1 with the same hash);
PKCS#1 v1.5 is ``CKM_RSA_PKCS`` over the DER ``DigestInfo``; Ed25519 is ``CKM_EDDSA``
over the bytes given.

Library: PyKCS11 (1.5). Signing from 8 threads at once, each on its own session
(tests/integration/test_pkcs11_library.py, 2,000 signatures a thread on SoftHSM 2.6.1):
PyKCS11 1.5.20 made every signature; python-pkcs11 0.10.1 failed in each of three runs:
``GeneralError`` in every thread, or the process died (segmentation fault, "double free
or corruption") - it initialises the module without OS locking, so the module's state is
not protected against concurrent calls. The price of PyKCS11: its SWIG wrapper keeps the
GIL during every module call (``_LowLevel.so`` never calls ``PyEval_SaveThread``), so one
process makes one PKCS#11 call at a time (SoftHSM P-256: ~6,000 signatures/s from one
thread, fewer from two), and a slow HSM stalls the process's other threads for the length
of each call. signgate signs each batch on one writer thread per process anyway; run more
``serve`` workers to use a network HSM's parallelism.

Sessions: the user logs in once per token, on an anchor session that stays open (the
login state belongs to the application and ends when its last session closes). Signing
takes a session from a pool (opened on demand, returned after use): no lock is held
around ``C_Sign``. When the module says a session or the login is gone
(``CKR_SESSION_HANDLE_INVALID``, ``CKR_SESSION_CLOSED``, ``CKR_USER_NOT_LOGGED_IN``,
a removed token ...), every session is closed, the token found again, the user logged in
again and the operation tried once more; what still fails raises
:class:`~signgate.errors.KeyStoreUnavailable` (``keystore_unavailable``): nothing is
signed, and the next request tries again, without a restart.

One-time keys (:meth:`Pkcs11KeyStore.one_time_store`) are session objects
(``CKA_TOKEN`` false) made on a session held for them alone until their one signing;
``destroy`` destroys them and checks that the handle no longer signs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import PyKCS11
from asn1crypto import algos, core, keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import ConfigError, InvalidInput, KeyStoreError, KeyStoreUnavailable
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.pkcs11_uri import SCHEME, format_uri, parse

log = logging.getLogger("signgate.keystore.pkcs11")

T = TypeVar("T")

# What the module says when a session or the login is gone: re-open and try once more.
# (Not CKR_SESSION_COUNT: closing every session because there are too many would only
# fail the signings in flight.)
_RECOVERABLE = frozenset({
    PyKCS11.CKR_SESSION_HANDLE_INVALID, PyKCS11.CKR_SESSION_CLOSED,
    PyKCS11.CKR_USER_NOT_LOGGED_IN, PyKCS11.CKR_TOKEN_NOT_PRESENT,
    PyKCS11.CKR_DEVICE_REMOVED, PyKCS11.CKR_TOKEN_NOT_RECOGNIZED,
    PyKCS11.CKR_CRYPTOKI_NOT_INITIALIZED, PyKCS11.CKR_DEVICE_ERROR,
    PyKCS11.CKR_GENERAL_ERROR,
})
# A cached key handle that names no object any more (destroyed by another process, say):
# find the key again, on the same session.
_STALE_HANDLE = frozenset({PyKCS11.CKR_OBJECT_HANDLE_INVALID, PyKCS11.CKR_KEY_HANDLE_INVALID})
_LOGGED_IN = frozenset({PyKCS11.CKS_RO_USER_FUNCTIONS, PyKCS11.CKS_RW_USER_FUNCTIONS})
_MAX_IDLE_SESSIONS = 64
_CURVES: dict[KeyAlgorithm, tuple[str, ec.EllipticCurve]] = {
    KeyAlgorithm.ECDSA_P256: ("secp256r1", ec.SECP256R1()),
    KeyAlgorithm.ECDSA_P384: ("secp384r1", ec.SECP384R1()),
}
_HASH_MECHANISMS = {
    DigestAlgorithm.SHA256: (PyKCS11.CKM_SHA256, PyKCS11.CKG_MGF1_SHA256),
    DigestAlgorithm.SHA384: (PyKCS11.CKM_SHA384, PyKCS11.CKG_MGF1_SHA384),
    DigestAlgorithm.SHA512: (PyKCS11.CKM_SHA512, PyKCS11.CKG_MGF1_SHA512),
}
# Security attributes of a private key, as `key show` reports them.
_SECURITY = (("sensitive", PyKCS11.CKA_SENSITIVE), ("extractable", PyKCS11.CKA_EXTRACTABLE),
             ("never_extractable", PyKCS11.CKA_NEVER_EXTRACTABLE),
             ("always_sensitive", PyKCS11.CKA_ALWAYS_SENSITIVE), ("local", PyKCS11.CKA_LOCAL))
# What a key generated here must show: (attribute name, required value).
_REQUIRED = {"sensitive": True, "extractable": False, "never_extractable": True,
             "always_sensitive": True, "local": True}


def _ckr(exc: PyKCS11.PyKCS11Error) -> str:
    """The CKR_ name of a module error (never anything the module added to it)."""
    name = PyKCS11.CKR.get(exc.value)
    return name if isinstance(name, str) else f"0x{exc.value:08X}"


class _NotConnected(KeyStoreUnavailable):
    """The module, the token or the login failed (connecting): the caller says what it
    was doing (a signing) or that the store cannot start (``check``)."""


@dataclass(frozen=True)
class KeyAttributes:
    """The security attributes of a private key on the token, for auditors (None: the
    token does not say, which never counts as the value a key must have)."""

    sensitive: bool | None
    extractable: bool | None
    never_extractable: bool | None
    always_sensitive: bool | None
    local: bool | None

    def as_dict(self) -> dict[str, bool | None]:
        return {name: getattr(self, name) for name, _ in _SECURITY}


class _Session:
    """One PyKCS11 session and the connection generation it was opened in."""

    def __init__(self, session: Any, generation: int) -> None:
        self.session = session
        self.generation = generation


class Pkcs11KeyStore:
    """A token of a PKCS#11 module; implements :class:`signgate.keystore.base.KeyStore`.

    ``name`` is the store's name in ``config.toml``; ``token`` the token's label (keys on
    other tokens are other stores' keys). The PIN is kept only in this object's memory and
    never appears in its repr, its messages or its logs.
    """

    scheme = SCHEME

    def __init__(self, name: str, module: str, token: str, pin: str) -> None:
        self.name = name
        self.module = module
        self.token = token
        self._pin = pin
        self._lock = threading.Lock()  # guards the fields below, never held around C_Sign
        self._lib: Any = None
        self._slot: int | None = None
        self._anchor: Any = None
        self._generation = 0
        self._idle: list[_Session] = []
        self._handles: dict[str, Any] = {}  # uri -> private key handle (this generation)
        self._once: dict[str, tuple[_Session, Any]] = {}  # one-time keys: session, handle
        self._mechanisms: frozenset[int] = frozenset()

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore({self.name!r}, token={self.token!r}, <pin>)"

    def owns(self, uri: str) -> bool:
        """Whether ``uri`` names a key on this store's token (the registry routes by it)."""
        try:
            return parse(uri).token == self.token
        except InvalidInput:
            return False

    # -- the connection: load, find the token, log in -----------------------------------

    def check(self) -> None:
        """Load the module, find the token and log in: what ``serve`` checks before it
        listens. Raises :class:`ConfigError` with one sentence (never the PIN)."""
        try:
            with self._lock:
                self._connect()
        except KeyStoreUnavailable as exc:
            raise ConfigError(f"key store {self.name!r}: {exc}") from exc

    def _connect(self) -> None:
        """(Re)connect under ``self._lock``: close what is open, find the token's slot,
        open the anchor session and log in. Raises :class:`KeyStoreUnavailable`."""
        self._disconnect()
        if self._lib is None:
            if not os.path.exists(self.module):
                raise _NotConnected(f"the PKCS#11 module {self.module} does not exist")
            lib = PyKCS11.PyKCS11Lib()
            try:
                lib.load(self.module)
            except PyKCS11.PyKCS11Error as exc:
                raise _NotConnected(
                    f"the PKCS#11 module {self.module} does not load ({_ckr(exc)})") from exc
            self._lib = lib
        try:
            slot = self._find_slot()
            anchor = self._lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
        except PyKCS11.PyKCS11Error as exc:
            raise _NotConnected(
                f"the token {self.token!r} cannot be opened ({_ckr(exc)})") from exc
        try:
            anchor.login(self._pin)
        except PyKCS11.PyKCS11Error as exc:
            # Already logged in: the login belongs to the application (this process),
            # and another session of it logged in (a second store object of the token).
            if exc.value != PyKCS11.CKR_USER_ALREADY_LOGGED_IN:
                with contextlib.suppress(PyKCS11.PyKCS11Error):
                    anchor.closeSession()
                why = ("wrong PIN" if exc.value == PyKCS11.CKR_PIN_INCORRECT
                       else "the PIN is locked" if exc.value == PyKCS11.CKR_PIN_LOCKED
                       else _ckr(exc))
                raise _NotConnected(
                    f"cannot log in to the token {self.token!r}: {why}") from exc
        self._slot, self._anchor = slot, anchor
        self._generation += 1
        self._mechanisms = self._mechanism_numbers(slot)

    def _mechanism_numbers(self, slot: int) -> frozenset[int]:
        """PyKCS11 lists mechanisms by name: their numbers."""
        numbers = set()
        for m in self._lib.getMechanismList(slot):
            value = PyKCS11.CKM.get(m)
            if isinstance(value, int):
                numbers.add(value)
        return frozenset(numbers)

    def _find_slot(self) -> int:
        for slot in self._lib.getSlotList(tokenPresent=True):
            try:
                info = self._lib.getTokenInfo(slot)
            except PyKCS11.PyKCS11Error:
                continue  # a token that fails to answer (removed, broken) is not this one
            if str(info.label).rstrip(" \0") == self.token:
                return int(slot)
        raise _NotConnected(f"no token labelled {self.token!r} in {self.module}")

    def _disconnect(self) -> None:
        """Forget every session and handle (the module closes them for the slot)."""
        self._idle.clear()
        self._handles.clear()
        self._once.clear()
        if self._lib is not None and self._slot is not None:
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                self._lib.closeAllSessions(self._slot)
        self._anchor = None
        self._slot = None

    def _reconnect(self, seen: int) -> None:
        """Reconnect, unless another thread already did since generation ``seen``."""
        with self._lock:
            if self._generation == seen and self._anchor is not None:
                log.warning("key store %r: re-opening the sessions of token %r",
                            self.name, self.token)
                self._connect()
            elif self._anchor is None:
                self._connect()

    def close(self) -> None:
        """Log out and close every session (the server's shutdown)."""
        with self._lock:
            if self._anchor is not None:
                with contextlib.suppress(PyKCS11.PyKCS11Error):
                    self._anchor.logout()
            self._disconnect()

    # -- sessions ---------------------------------------------------------------------

    def _take(self) -> _Session:
        with self._lock:
            if self._anchor is None:
                self._connect()
            generation = self._generation
            while self._idle:
                s = self._idle.pop()
                if s.generation == generation:
                    return s
            lib, slot = self._lib, self._slot
        return _Session(lib.openSession(slot, PyKCS11.CKF_RW_SESSION), generation)

    def _give_back(self, s: _Session) -> None:
        with self._lock:
            if s.generation == self._generation and len(self._idle) < _MAX_IDLE_SESSIONS:
                self._idle.append(s)
                return
        with contextlib.suppress(PyKCS11.PyKCS11Error):
            s.session.closeSession()

    def _run(self, doing: str, op: Callable[[_Session], T]) -> T:
        """``op`` on a pooled session; on a lost session or login, reconnect and try
        once more. Module errors become :class:`KeyStoreUnavailable`."""
        try:
            return self._attempt(doing, op)
        except _NotConnected as exc:
            raise self._not_connected(doing, exc) from exc

    def _not_connected(self, doing: str, exc: _NotConnected) -> KeyStoreUnavailable:
        log.error("key store %r failed to %s: %s", self.name, doing, exc)
        return KeyStoreUnavailable(f"the HSM key store {self.name!r} could not {doing}: {exc}")

    def _attempt(self, doing: str, op: Callable[[_Session], T]) -> T:
        reconnected = refound = False
        while True:
            generation = self._generation
            try:
                s = self._take()
            except PyKCS11.PyKCS11Error as exc:
                if reconnected or exc.value not in _RECOVERABLE:
                    raise self._unavailable(doing, exc) from exc
                self._reconnect(generation)
                reconnected = True
                continue
            try:
                result = op(s)
            except PyKCS11.PyKCS11Error as exc:
                if not refound and exc.value in _STALE_HANDLE:
                    with self._lock:
                        self._handles.clear()
                    self._give_back(s)
                    refound = True
                    continue
                with contextlib.suppress(PyKCS11.PyKCS11Error):
                    s.session.closeSession()
                if reconnected or exc.value not in _RECOVERABLE:
                    raise self._unavailable(doing, exc) from exc
                self._reconnect(s.generation)
                reconnected = True
                continue
            except BaseException:
                self._give_back(s)
                raise
            self._give_back(s)
            return result

    def _unavailable(self, doing: str, exc: PyKCS11.PyKCS11Error) -> KeyStoreUnavailable:
        log.error("key store %r (token %r) failed to %s: %s", self.name, self.token,
                  doing, _ckr(exc))
        return KeyStoreUnavailable(
            f"the HSM key store {self.name!r} could not {doing}: the token {self.token!r} "
            f"answered {_ckr(exc)}")

    # -- generate ---------------------------------------------------------------------

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        """A new key pair made on the token (token objects)."""
        return self._generate(algorithm, one_time=False)

    def _generate(self, algorithm: KeyAlgorithm, *, one_time: bool) -> GeneratedKey:
        object_id = os.urandom(16)
        label = f"signgate-{'once-' if one_time else ''}{object_id.hex()[:16]}"
        uri = format_uri(self.token, object_id, label)
        if not one_time:
            return self._run(f"generate a {algorithm.value} key",
                             lambda s: self._make(s, algorithm, object_id, label, uri, True))
        # A session object lives as long as its session: hold one for the key alone.
        doing = f"generate a one-time {algorithm.value} key"
        try:
            s = self._take()
        except PyKCS11.PyKCS11Error as exc:
            raise self._unavailable(doing, exc) from exc
        except _NotConnected as exc:
            raise self._not_connected(doing, exc) from exc
        try:
            generated = self._make(s, algorithm, object_id, label, uri, False)
        except PyKCS11.PyKCS11Error as exc:
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                s.session.closeSession()
            raise self._unavailable(f"generate a one-time {algorithm.value} key", exc) \
                from exc
        except BaseException:
            self._give_back(s)
            raise
        return generated

    def _make(self, s: _Session, algorithm: KeyAlgorithm, object_id: bytes, label: str,
              uri: str, token: bool) -> GeneratedKey:
        session = s.session
        common = [(PyKCS11.CKA_TOKEN, token), (PyKCS11.CKA_ID, object_id),
                  (PyKCS11.CKA_LABEL, label)]
        public = [*common, (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
                  (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_PRIVATE, False)]
        private = [*common, (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                   *self.private_key_policy()]
        if algorithm in _CURVES:
            params = keys.ECDomainParameters(name="named", value=_CURVES[algorithm][0]).dump()
            public += [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC), (PyKCS11.CKA_EC_PARAMS, params)]
            private.append((PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC))
            mechanism = PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN)
        elif algorithm is KeyAlgorithm.ED25519:
            self._require(PyKCS11.CKM_EDDSA, algorithm)
            params = core.ObjectIdentifier("1.3.101.112").dump()  # id-Ed25519, RFC 8410
            public += [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC_EDWARDS),
                       (PyKCS11.CKA_EC_PARAMS, params)]
            private.append((PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC_EDWARDS))
            mechanism = PyKCS11.Mechanism(PyKCS11.CKM_EC_EDWARDS_KEY_PAIR_GEN)
        else:
            bits = 3072 if algorithm is KeyAlgorithm.RSA_3072 else 4096
            public += [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
                       (PyKCS11.CKA_MODULUS_BITS, bits),
                       (PyKCS11.CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01))]
            private.append((PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA))
            mechanism = PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS_KEY_PAIR_GEN)
        pub, priv = session.generateKeyPair(public, private, mechanism)
        try:
            got = self._security(session, priv)
            wrong = [n for n, want in _REQUIRED.items() if getattr(got, n) is not want]
            if wrong:
                raise KeyStoreError(
                    f"the token {self.token!r} did not keep the new key inside it "
                    f"({', '.join(f'{n}={getattr(got, n)}' for n in wrong)}): refused and "
                    f"destroyed")
            pem = self._public_pem(session, pub, algorithm)
        except BaseException:
            for handle in (priv, pub):
                with contextlib.suppress(PyKCS11.PyKCS11Error):
                    session.destroyObject(handle)
            raise
        if token:
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                session.destroyObject(pub)  # the database keeps the public key
            with self._lock:
                if s.generation == self._generation:
                    self._handles[uri] = priv
        else:
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                session.destroyObject(pub)
            with self._lock:
                self._once[uri] = (s, priv)
        return GeneratedKey(uri=uri, public_key_pem=pem)

    @staticmethod
    def private_key_policy() -> list[tuple[int, bool]]:
        """What a new private key's template asks of the token: private, sensitive, never
        extractable, for signing. (What the token did is read back and checked.)"""
        return [(PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SENSITIVE, True),
                (PyKCS11.CKA_EXTRACTABLE, False), (PyKCS11.CKA_SIGN, True)]

    def _require(self, mechanism: int, algorithm: KeyAlgorithm) -> None:
        if mechanism not in self._mechanisms:
            raise KeyStoreError(f"the token {self.token!r} of key store {self.name!r} has no "
                                f"{PyKCS11.CKM[mechanism]}: it cannot make {algorithm.value} "
                                "keys")

    @staticmethod
    def _security(session: Any, handle: Any) -> KeyAttributes:
        values = session.getAttributeValue(handle, [a for _, a in _SECURITY])
        return KeyAttributes(*(None if v is None else bool(v) for v in values))

    @staticmethod
    def _public_pem(session: Any, handle: Any, algorithm: KeyAlgorithm) -> str:
        public: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
        if algorithm.is_rsa:
            n, e = session.getAttributeValue(
                handle, [PyKCS11.CKA_MODULUS, PyKCS11.CKA_PUBLIC_EXPONENT], allAsBinary=True)
            public = rsa.RSAPublicNumbers(int.from_bytes(bytes(e), "big"),
                                          int.from_bytes(bytes(n), "big")).public_key()
        else:
            params, raw = session.getAttributeValue(
                handle, [PyKCS11.CKA_EC_PARAMS, PyKCS11.CKA_EC_POINT], allAsBinary=True)
            curve = _curve_name(bytes(params))
            wanted = ("1.3.101.112", "edwards25519") if algorithm is KeyAlgorithm.ED25519 \
                else (_CURVES[algorithm][0],)
            if curve not in wanted:
                raise KeyStoreError(f"the token made a {algorithm.value} key on curve "
                                    f"{curve!r}: refused and destroyed")
            size = 32 if algorithm is KeyAlgorithm.ED25519 else \
                1 + 2 * ((_CURVES[algorithm][1].key_size + 7) // 8)
            point = _unwrap_point(bytes(raw), size)
            if algorithm is KeyAlgorithm.ED25519:
                public = ed25519.Ed25519PublicKey.from_public_bytes(point)
            else:
                public = ec.EllipticCurvePublicKey.from_encoded_point(
                    _CURVES[algorithm][1], point)
        return public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    # -- find, sign, attributes, destroy ------------------------------------------------

    def _handle(self, s: _Session, ref: KeyRef) -> Any:
        """The private key's handle, cached per connection generation."""
        with self._lock:
            once = self._once.get(ref.uri)
            if once is not None:
                return once[1]
            cached = self._handles.get(ref.uri) if s.generation == self._generation else None
        if cached is not None:
            return cached
        parsed = parse(ref.uri)
        if parsed.token != self.token or parsed.id is None:
            raise KeyStoreError(f"key {ref.uri} is not a key of token {self.token!r}")
        template = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_ID, parsed.id)]
        if parsed.object is not None:
            template.append((PyKCS11.CKA_LABEL, parsed.object))
        found = s.session.findObjects(template)
        if not found and s.session.getSessionInfo().state not in _LOGGED_IN:
            # Private objects are invisible to a session that is not logged in: the login
            # is gone (logged out elsewhere), not the key.
            raise PyKCS11.PyKCS11Error(PyKCS11.CKR_USER_NOT_LOGGED_IN)
        if len(found) != 1:
            raise KeyStoreUnavailable(
                f"the HSM key store {self.name!r} could not sign: key {ref.uri} is "
                f"{'not' if not found else 'more than once'} on token {self.token!r} (destroyed, "
                f"or not the token it was made on)")
        with self._lock:
            if s.generation == self._generation:
                self._handles[ref.uri] = found[0]
        return found[0]

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        with self._lock:
            once = self._once.get(ref.uri)
        if once is not None:  # a one-time key signs on the session that holds it
            s, handle = once
            try:
                return _sign(s.session, handle, ref, digest_algorithm, digest)
            except PyKCS11.PyKCS11Error as exc:
                raise self._unavailable(f"sign with one-time key {ref.uri}", exc) from exc
        return self._run(f"sign with key {ref.uri}",
                         lambda s: _sign(s.session, self._handle(s, ref), ref,
                                         digest_algorithm, digest))

    def probe(self, ref: KeyRef) -> None:
        """Find the key on the token (logged in), without signing."""
        self._run(f"find key {ref.uri}", lambda s: self._handle(s, ref))

    def attributes(self, ref: KeyRef) -> KeyAttributes:
        """The key's security attributes as the token reports them now."""
        return self._run(f"read the attributes of key {ref.uri}",
                         lambda s: self._security(s.session, self._handle(s, ref)))

    def destroy(self, ref: KeyRef) -> None:
        """Destroy the private key object; a one-time key's session is closed after, and
        the handle is checked not to sign any more."""
        with self._lock:
            once = self._once.pop(ref.uri, None)
            self._handles.pop(ref.uri, None)
        if once is None:
            self._run(f"destroy key {ref.uri}", lambda s: self._destroy_token_key(s, ref))
            return
        s, handle = once
        try:
            s.session.destroyObject(handle)
        except PyKCS11.PyKCS11Error as exc:
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                s.session.closeSession()  # a session object dies with its session
            raise self._unavailable(f"destroy one-time key {ref.uri}", exc) from exc
        try:
            _sign(s.session, handle, ref, DigestAlgorithm.SHA256, bytes(32))
        except PyKCS11.PyKCS11Error:
            pass  # what must happen: the handle names no key any more
        else:
            raise KeyStoreError(f"one-time key {ref.uri} still signs after C_DestroyObject")
        finally:
            self._give_back(s)

    def _destroy_token_key(self, s: _Session, ref: KeyRef) -> None:
        handle = self._handle(s, ref)
        s.session.destroyObject(handle)

    def one_time_store(self) -> Pkcs11OneTimeStore:
        """The view of this token that makes one-time keys (session objects)."""
        return Pkcs11OneTimeStore(self)


class Pkcs11OneTimeStore:
    """One-time keys on a token: ``generate`` makes session objects; the rest is the
    token's store (which knows its one-time keys by URI)."""

    scheme = SCHEME

    def __init__(self, store: Pkcs11KeyStore) -> None:
        self.store = store
        self.name = store.name
        self.token = store.token

    def owns(self, uri: str) -> bool:
        return self.store.owns(uri)

    def generate(self, algorithm: KeyAlgorithm) -> GeneratedKey:
        return self.store._generate(algorithm, one_time=True)

    def sign(self, ref: KeyRef, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        return self.store.sign(ref, digest_algorithm, digest)

    def probe(self, ref: KeyRef) -> None:
        self.store.probe(ref)

    def attributes(self, ref: KeyRef) -> KeyAttributes:
        return self.store.attributes(ref)

    def destroy(self, ref: KeyRef) -> None:
        self.store.destroy(ref)


def _sign(session: Any, handle: Any, ref: KeyRef, digest_algorithm: DigestAlgorithm,
          digest: bytes) -> bytes:
    algorithm = ref.algorithm
    if algorithm.is_ecdsa:
        raw = bytes(session.sign(handle, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA)))
        half = len(raw) // 2  # PKCS#11 ECDSA signatures are r || s, each of the order's size
        return encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                    int.from_bytes(raw[half:], "big"))
    if algorithm is KeyAlgorithm.ED25519:
        return bytes(session.sign(handle, digest, PyKCS11.EDDSA_Mechanism()))
    if ref.rsa_padding is RsaPadding.PKCS1V15:
        info = algos.DigestInfo({
            "digest_algorithm": {"algorithm": digest_algorithm.value,
                                 "parameters": core.Null()},
            "digest": digest}).dump()  # RFC 8017 §9.2 step 2
        return bytes(session.sign(handle, info, PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS)))
    hash_mechanism, mgf = _HASH_MECHANISMS[digest_algorithm]
    pss = PyKCS11.RSA_PSS_Mechanism(PyKCS11.CKM_RSA_PKCS_PSS, hash_mechanism, mgf,
                                    digest_algorithm.size)
    return bytes(session.sign(handle, digest, pss))


def _curve_name(params: bytes) -> str:
    """The curve CKA_EC_PARAMS names: a named curve's OID (asn1crypto's name for it, e.g.
    ``secp256r1``; Ed25519's ``1.3.101.112``, RFC 8410) or, for Edwards curves, the
    PrintableString name PKCS#11 3.0 also allows (``edwards25519``)."""
    try:
        parsed = keys.ECDomainParameters.load(params)
        if parsed.name == "named":
            return str(parsed.chosen.native)
    except (ValueError, TypeError):
        pass
    try:
        return str(core.PrintableString.load(params).native)
    except (ValueError, TypeError):
        return params.hex()


def _unwrap_point(value: bytes, size: int) -> bytes:
    """The ``size``-byte point of CKA_EC_POINT: a DER OCTET STRING holding it (PKCS#11
    2.40 §2.3.3), or the bare point some tokens give."""
    if len(value) == size:
        return value
    try:
        inner = bytes(core.OctetString.load(value, strict=True).native)
    except (ValueError, TypeError):
        inner = b""
    if len(inner) != size:
        raise KeyStoreError(f"the token gave a public key point of {len(value)} bytes, "
                            f"not a {size}-byte point")
    return inner
