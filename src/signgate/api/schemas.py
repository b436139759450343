"""Request bodies. Responses are the service's own view dataclasses (service/views.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from signgate.service import sign_request
from signgate.service.context import Caller


class Strict(BaseModel):
    """A request body: unknown fields are refused, and booleans and integers must be JSON
    booleans and numbers (pydantic's lax mode would take "yes" as true and "10" as 10)."""

    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Strict):
    name: str = Field(max_length=63, examples=["acme-app"])


class KeyCreate(Strict):
    name: str = Field(max_length=63, examples=["release"])
    algorithm: str = Field("ecdsa-p256", max_length=16,
                           description="ecdsa-p256, ecdsa-p384, ed25519, rsa-3072 or rsa-4096")
    rsa_padding: str = Field("pss", max_length=16, description="pss or pkcs1v15 (RSA keys)")
    rotate_every_days: StrictInt | None = Field(None, ge=1, le=36500)
    max_signatures: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    cert_validity_days: StrictInt = Field(365, ge=1, le=36500,
                                    description="validity of each version's certificate")
    require_timestamp: StrictBool = Field(
        False, description="refuse to hand out any signature that is not timestamped (the "
        "server timestamps it)")
    one_time: StrictBool = Field(False, description="a fresh key pair and short-lived "
                                 "certificate for every signing, destroyed right after")
    scan: str | None = Field(None, max_length=16, description="required: sign only artifacts "
                             "signgate scanned clean itself; off. Default: required once a "
                             "scanner is configured")
    store: str | None = Field(None, max_length=63, description="the key store (config.toml) "
                              "the key pair is made in: 'soft' or a [stores.NAME] table's "
                              "name. Default: default_store")


class KeyRotate(Strict):
    store: str | None = Field(None, max_length=63, description="the key store the new "
                              "version is made in (moving a key, e.g. onto an HSM). Default: "
                              "the store of the current version")


class ScanPolicyBody(Strict):
    scan: str = Field(max_length=16, description="required or off")


class KeyRevoke(Strict):
    compromised_at: datetime
    reason: str | None = Field(None, max_length=1000)


class IdentityCreate(Strict):
    name: str = Field(max_length=63)
    kind: str = Field("service", max_length=16, description="service or user")


class GrantBody(Strict):
    identity: str | None = Field(None, max_length=63,
                                 description="the identity (not with oidc)")
    role: str = Field(max_length=16, description="admin, signer, approver or auditor")
    scope: str = Field(max_length=127, description="'*', PROJECT or PROJECT/KEY")
    oidc: str | None = Field(None, max_length=63, description="an OIDC issuer's name: the "
                             "grant goes to its tokens whose claims match 'claims'")
    claims: list[str] = Field(default_factory=list, max_length=16,
                              description="with oidc: NAME=VALUE or NAME=V1,V2 (any of); "
                                          "all must match",
                              examples=[["repository_id=123456", "ref=refs/heads/main"]])


class OidcIssuerCreate(Strict):
    name: str = Field(max_length=63, examples=["github"])
    issuer: str = Field(max_length=512, examples=["https://token.actions.githubusercontent.com"])
    audience: str = Field(max_length=512, examples=["https://signgate.example.com"])
    jwks_url: str | None = Field(None, max_length=1024,
                                 description="default: the jwks_uri of the issuer's "
                                             "/.well-known/openid-configuration")


class OidcExchange(Strict):
    token: str = Field(max_length=16384, description="the CI job's OIDC token (a JWT)")


class SignRequest(Strict):
    digest_algorithm: str = Field("sha256", max_length=16)
    digest: str = Field(max_length=128, description="hex digest of the artifact")
    artifact_name: str = Field(max_length=1024)
    metadata: dict[str, str] = Field(default_factory=dict)
    timestamp: StrictBool = Field(False,
                                  description="add an RFC 3161 timestamp over the signature")
    format: str = Field("raw", max_length=16, description="raw, cms, authenticode, jar, "
                        "openpgp, dsse or sigstore (see the README for what each signs)")
    params: dict[str, str] = Field(default_factory=dict, description="the format's own "
                                   "parameters (e.g. OpenPGP's hashed signature area)")
    release: str | None = Field(None, max_length=128, description="the release label: "
                                "required by a key that needs independent builders")

    def to_service(self, caller: Caller, project: str, key: str) -> sign_request.SignRequest:
        """The service's request for this body, sent by ``caller`` to ``project/key``."""
        return sign_request.SignRequest(
            caller, project, key, self.digest_algorithm, self.digest, self.artifact_name,
            self.metadata, self.timestamp, self.format, self.params, release=self.release)


class VerifyRequest(Strict):
    digest_algorithm: str = Field("sha256", max_length=16)
    digest: str = Field(max_length=128)
    signature: str = Field(max_length=4096, description="base64 signature")


class CertificateImport(Strict):
    chain_pem: str = Field(max_length=65536, description="leaf first, then its issuers (PEM)")
    version: StrictInt | None = Field(None, ge=1, le=2**31 - 1,
                                      description="default: current")
