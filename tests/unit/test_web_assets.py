"""The console's packaged assets: htmx is the pinned file, and no template holds an inline
script, style or event handler (the Content-Security-Policy would block them)."""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files

from signgate.web.static import HTMX_SHA256, TYPES

WEB = files("signgate.web")


def test_htmx_is_the_pinned_release() -> None:
    data = (WEB / "static" / "htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert b'version:"2.0.4"' in data


INLINE = [re.compile(r"<script(?![^>]*\bsrc=)"), re.compile(r"<style"),
          re.compile(r"\sstyle\s*="), re.compile(r"\son[a-z]+\s*=")]


def inline(text: str) -> list[str]:
    return [p.pattern for p in INLINE if p.search(text)]


def test_templates_have_no_inline_script_style_or_handler() -> None:
    templates = [t for t in (WEB / "templates").iterdir() if t.name.endswith(".html")]
    assert len(templates) >= 10
    for t in templates:
        assert inline(t.read_text()) == [], t.name
    # and the check finds each kind
    assert len(inline('<script>x()</script><style>p{}</style><p style="a" onclick="b">')) == 4
    assert inline('<script src="/ui/static/htmx.min.js"></script>') == []


def test_every_served_static_file_ships() -> None:
    for name in TYPES:
        assert (WEB / "static" / name).read_bytes()
