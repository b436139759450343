"""The ceiling for bench/sign_throughput.py: the same HTTP stack (uvicorn, FastAPI, the
same request and response shapes) signing with an in-memory key. No auth, no database, no
audit log. Never ship this: it exists only to measure what signgate's controls cost."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from fastapi import FastAPI

from signgate.api.schemas import SignRequest
from signgate.service.views import Receipt, SignResult

_KEY = ec.generate_private_key(ec.SECP256R1())


def create() -> FastAPI:
    app = FastAPI(title="bare signing endpoint (benchmark ceiling)",
                  telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/api/v1/projects/{project}/keys/{key}/sign")
    async def sign(project: str, key: str, body: SignRequest) -> SignResult:
        digest = bytes.fromhex(body.digest)
        sig = _KEY.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        receipt = Receipt(
            signature_id=str(uuid.uuid4()), key=f"{project}/{key}", key_version=1,
            algorithm="ecdsa-p256", rsa_padding=None, digest_algorithm="sha256",
            digest=digest.hex(), artifact_name=body.artifact_name, format="raw",
            identity="-", signed_at=datetime.now(UTC), audit_seq=0,
        )
        return SignResult(base64.b64encode(sig).decode(), receipt)

    return app
