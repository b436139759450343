"""RFC 3161 tokens with a genTime in 2050 and later (injected clock), as ``openssl ts
-verify`` checks them.

From 2050 on, RFC 5652 §11.3 has the CMS signingTime attribute in GeneralizedTime (UTCTime
only reaches 2049); the token must still be built, and still verify. The PKI is made at the
end of 2049 so that its certificates are valid at the tokens' times; openssl checks the chain
at the token's time (``-attime``), which is how a verifier in 2050 would see it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms, tsp

from signgate.clock import FixedClock
from signgate.config import Settings
from signgate.pki import certs
from signgate.service import tsa
from signgate.service.bootstrap import ensure_all
from signgate.service.context import Context
from signgate.service.factory import build_context, key_stores
from signgate.service.records import authorities

PKI_MADE = datetime(2049, 12, 1, 12, 0, tzinfo=UTC)
DATA = b"an artifact time-stamped in the second half of the century"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[tuple[Context, FixedClock]]:
    url = f"sqlite:///{tmp_path / 'signgate.db'}"
    clock = FixedClock(PKI_MADE)
    c = build_context(Settings(tmp_path, url), clock,
                      lambda db: key_stores(os.urandom(32), db))
    c.db.upgrade()
    ensure_all(c)
    yield c, clock
    c.close()


def _request() -> bytes:
    return bytes(tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(DATA).digest()},
        "cert_req": True,
    }).dump())


@pytest.mark.parametrize("when", [datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC),
                                  datetime(2051, 7, 15, 9, 30, 5, tzinfo=UTC)])
def test_tokens_from_2050_on_verify_with_openssl(ctx: tuple[Context, FixedClock],
                                                 tmp_path: Path, when: datetime) -> None:
    c, clock = ctx
    clock.advance(when - clock.now())
    reply = tsa.timestamp(c, _request(), "127.0.0.1")
    assert reply.granted

    response = tsp.TimeStampResp.load(reply.der)
    signed = response["time_stamp_token"]["content"]
    info = signed["encap_content_info"]["content"].parsed
    assert info["gen_time"].native == when
    attributes = {a["type"].native: a["values"][0]
                  for a in signed["signer_infos"][0]["signed_attrs"]}
    signing_time = attributes["signing_time"]
    assert isinstance(signing_time, cms.Time)
    assert signing_time.name == "generalized_time"  # RFC 5652 §11.3
    assert signing_time.native == when

    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "reply.tsr").write_bytes(reply.der)
    with c.db.read() as session:
        authority = authorities.root(session)
        assert authority is not None
        root_der = authorities.authority_certificate(session, authority).der
    (tmp_path / "root.pem").write_text(certs.to_pem(root_der))
    verify = ["openssl", "ts", "-verify", "-in", str(tmp_path / "reply.tsr"),
              "-CAfile", str(tmp_path / "root.pem"), "-attime", str(int(when.timestamp()))]
    ok = subprocess.run([*verify, "-data", str(tmp_path / "data.bin")],
                        capture_output=True, text=True)
    assert "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    # Other data: the same token does not verify (the check can fail).
    (tmp_path / "other.bin").write_bytes(DATA + b"!")
    bad = subprocess.run([*verify, "-data", str(tmp_path / "other.bin")],
                         capture_output=True, text=True)
    assert "Verification: OK" not in bad.stdout
