"""Helpers for the web console's tests: a signed-in HTTP client, the CSRF token of a
page, and a seeded server (projects, keys, identities, signatures)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import unique
from tests.support.server import Server

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


@contextlib.contextmanager
def sign_in(server: Server, token: str) -> Iterator[httpx.Client]:
    """A client holding a console session of ``token``'s identity."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        form = c.get("/ui/sign-in")
        r = c.post("/ui/sign-in", data={"token": token, "csrf": csrf_of(form.text),
                                        "next": "/ui/"})
        assert r.status_code == 303, r.text
        yield c


def api(server: Server, method: str, path: str, token: str | None = None,
        ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
    with server.http(token) as http:
        r = http.request(method, "/api/v1" + path, **kwargs)
    assert r.status_code in ok, r.text
    return r.json()


def sign(server: Server, ref: str, data: bytes, token: str, name: str = "a.bin") -> Any:
    project, key = ref.split("/")
    return api(server, "POST", f"/projects/{project}/keys/{key}/sign", token,
               json={"digest": hashlib.sha256(data).hexdigest(), "artifact_name": name})


@dataclass(frozen=True)
class Seeded:
    p: str  # a project with key "release" (the signer's) and "spare"
    q: str  # another project the signer may not see
    signer: str
    signer_token: str
    auditor: str
    auditor_token: str


def seed(server: Server, signatures: int = 3) -> Seeded:
    p, q = unique("web-p"), unique("web-q")
    signer, auditor = unique("web-signer"), unique("web-aud")
    for name in (p, q):
        api(server, "POST", "/projects", json={"name": name})
    for project, key in ((p, "release"), (p, "spare"), (q, "nightly")):
        api(server, "POST", f"/projects/{project}/keys", json={"name": key})
    tokens = {n: api(server, "POST", "/identities", json={"name": n})["token"]
              for n in (signer, auditor)}
    api(server, "POST", "/grants", json={"identity": signer, "role": "signer",
                                         "scope": f"{p}/release"})
    api(server, "POST", "/grants", json={"identity": auditor, "role": "auditor", "scope": p})
    api(server, "POST", "/grants", json={"identity": "admin", "role": "signer", "scope": q})
    for i in range(signatures):
        sign(server, f"{p}/release", f"build {i}".encode(), tokens[signer], f"app-{i}.tar.gz")
    sign(server, f"{q}/nightly", b"nightly", server.admin_token, "<script>nightly</script>.bin")
    return Seeded(p, q, signer, tokens[signer], auditor, tokens[auditor])
