"""The served OpenAPI schema describes the API that is actually served."""

from __future__ import annotations

import hashlib

from tests.conftest import unique
from tests.support.server import Server


def _resolve(spec: dict, schema: dict) -> dict:  # type: ignore[type-arg]
    ref = schema.get("$ref")
    if ref:
        return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return schema


def test_schema_lists_every_route_and_matches_a_real_signing(server: Server) -> None:
    with server.http(token="") as anon:
        spec = anon.get("/openapi.json").json()
        assert anon.get("/healthz").json()["status"] == "ok"
    paths = spec["paths"]
    key = "/api/v1/projects/{project}/keys/{key}"
    for path, method in [
        ("/api/v1/projects", "post"), ("/api/v1/projects", "get"), ("/api/v1/keys", "get"),
        (key, "get"), (key + "/public", "get"), (key + "/rotate", "post"),
        (key + "/disable", "post"), (key + "/enable", "post"), (key + "/revoke", "post"),
        (key + "/sign", "post"), (key + "/verify", "post"), ("/api/v1/identities", "post"),
        ("/api/v1/identities/{name}/rotate-token", "post"), ("/api/v1/grants", "delete"),
        ("/api/v1/audit", "get"), ("/api/v1/audit/verify", "get"), ("/api/v1/whoami", "get"),
        ("/healthz", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from schema"

    sign_op = paths[key + "/sign"]["post"]
    request = _resolve(spec, sign_op["requestBody"]["content"]["application/json"]["schema"])
    assert {"digest", "artifact_name"} <= set(request["required"])
    response = _resolve(spec, sign_op["responses"]["200"]["content"]["application/json"]
                        ["schema"])
    receipt = _resolve(spec, response["properties"]["receipt"])

    project = unique("oas")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/k")
    server.cli("grant", "add", "admin", "signer", f"{project}/k")
    with server.http() as c:
        r = c.post(f"/api/v1/projects/{project}/keys/k/sign",
                   json={"digest": hashlib.sha256(b"x").hexdigest(), "artifact_name": "x"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == set(response["properties"])
    assert set(body["receipt"]) == set(receipt["properties"])
