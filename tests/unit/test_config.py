"""The settings model: every setting declared once (type, default, bounds, description),
each kind of bad value refused with one line naming the setting and where its value came
from, and the template `init` writes generated from the declarations."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from signgate.config import (
    DEFAULT_PUBLIC_URL,
    Settings,
    default_config_text,
    load_settings,
    setting_names,
    sqlite_url,
)
from signgate.errors import ConfigError


def refused(data_dir: Path, text: str, public_url: str | None = None) -> ConfigError:
    (data_dir / "config.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(data_dir, public_url)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(("text", "rule"), [
    # Integers: the wrong type (a string, a boolean, a float) and out of range.
    ('tsa_accuracy_seconds = "1"', "tsa_accuracy_seconds must be an integer from 1 to 60"),
    ("shutdown_grace_seconds = true", "shutdown_grace_seconds must be an integer from 1 to 3600"),
    ("jar_max_entries = 1.5", "jar_max_entries must be an integer from 1 to 65535"),
    ("jar_max_entries = 65536", "jar_max_entries must be an integer from 1 to 65535"),
    ("jar_max_manifest_bytes = 1023",
     "jar_max_manifest_bytes must be an integer from 1024 to 67108864"),
    ("max_body_bytes = 0", "max_body_bytes must be a positive integer"),
    ("scan_max_bytes = -1", "scan_max_bytes must be a positive integer"),
    # Strings, paths, OIDs and URLs.
    ('organization = ""', "organization must be a non-empty string"),
    ('scan_yara_dir = "rules"', "scan_yara_dir must be an absolute path"),
    ('tsa_policy_oid = "1.40"', "tsa_policy_oid must be a dotted OID such as "
                                "1.3.6.1.4.1.59544.1.1"),
    ('tsa_urls = "https://tsa.example.com"', "tsa_urls must be a list of http(s) URLs"),
    ('tsa_urls = ["https://tsa.example.com", "tsa.example.net"]',
     "tsa_urls must be a list of http(s) URLs"),
    ('public_url = "ftp://sign.example.com"', "public_url must be an http(s) URL such as "
                                              "http://127.0.0.1:8080, not 'ftp://sign.example.com'"),
    ('public_url = "https://sign.example.com/?x=1"', "public_url must be an http(s) URL such as "
     "http://127.0.0.1:8080, not 'https://sign.example.com/?x=1'"),
    ('database_url = "mysql://signgate@db/signgate"',
     "database_url must be a sqlite:// or postgresql:// URL"),
    ('database_url = "signgate.db"', "database_url must be a sqlite:// or postgresql:// URL"),
])
def test_bad_value_is_one_line_naming_the_setting(tmp_path: Path, text: str, rule: str) -> None:
    error = refused(tmp_path, text)
    assert str(error) == f"{tmp_path / 'config.toml'}: {rule}"
    assert error.code == "config_error"


@pytest.mark.parametrize(("text", "key", "hint"), [
    ("scan_clamd_sockett = \"/run/clamd.sock\"", "scan_clamd_sockett", "scan_clamd_socket"),
    ("tsa_url = []", "tsa_url", "tsa_urls"),
    ("data_dir = \"/srv/signgate\"", "data_dir", "database_url"),  # not a config.toml key
    ("colour = \"blue\"", "colour", None),
])
def test_unknown_key_names_the_closest_setting(tmp_path: Path, text: str, key: str,
                                               hint: str | None) -> None:
    error = refused(tmp_path, text)
    suffix = f" (did you mean {hint!r}?)" if hint else ""
    assert str(error) == f"{tmp_path / 'config.toml'}: unknown setting {key!r}{suffix}"
    assert error.code == "unknown_setting"


def test_a_value_is_named_with_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNGATE_DATABASE_URL", "oracle://db/signgate")
    assert str(refused(tmp_path, "")) == (
        "SIGNGATE_DATABASE_URL: database_url must be a sqlite:// or postgresql:// URL")
    monkeypatch.setenv("SIGNGATE_DATABASE_URL", "postgresql+psycopg://signgate@db/signgate")
    monkeypatch.setenv("SIGNGATE_PUBLIC_URL", "sign.example.com")
    assert str(refused(tmp_path, 'public_url = "https://sign.example.com"')) == (
        "SIGNGATE_PUBLIC_URL: public_url must be an http(s) URL such as "
        "http://127.0.0.1:8080, not 'sign.example.com'")
    assert str(refused(tmp_path, "", public_url="https://")).startswith(
        "--public-url: public_url must be")
    # The command line replaces the environment, which replaces config.toml.
    (tmp_path / "config.toml").write_text('public_url = "https://a.example.com"\n')
    monkeypatch.setenv("SIGNGATE_PUBLIC_URL", "https://b.example.com/")
    settings = load_settings(tmp_path)
    assert settings.public_url == "https://b.example.com"
    assert settings.database_url == "postgresql+psycopg://signgate@db/signgate"
    assert load_settings(tmp_path, "https://c.example.com").public_url == "https://c.example.com"


def test_every_setting_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert field.description.endswith("."), name


def test_the_template_reads_back_as_the_defaults(tmp_path: Path) -> None:
    text = default_config_text()
    # Every setting is in the template once, described; only public_url is set.
    for name in setting_names():
        if name == "stores":  # tables, shown by an example table
            assert text.count("\n#   [stores.hsm]\n") == 1
            continue
        assert len(re.findall(rf"(?m)^(# )?{name} = ", text)) == 1, name
    assert tomllib.loads(text) == {"public_url": DEFAULT_PUBLIC_URL}
    (tmp_path / "config.toml").write_text(text)
    data_dir = tmp_path.resolve()
    assert load_settings(tmp_path) == Settings(data_dir, sqlite_url(data_dir))
    # Uncommented, each line is the default or an example of a valid value.
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text)
    uncommented = re.sub(r"(?m)^#   ", "", uncommented)  # the example [stores.hsm] too
    assert set(tomllib.loads(uncommented)) == set(setting_names())
    (tmp_path / "config.toml").write_text(uncommented)
    settings = load_settings(tmp_path)
    assert settings.stores["hsm"].pin_env == "SIGNGATE_HSM_PIN"
    for name in setting_names():
        field = Settings.model_fields[name]
        if not field.examples and name != "stores":
            assert getattr(settings, name) == field.default, name
    # init writes the public URL it was given.
    url = "https://sign.example.com"
    assert tomllib.loads(default_config_text(url)) == {"public_url": url}


def test_settings_are_frozen_and_strict(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    with pytest.raises(ValidationError):
        settings.max_body_bytes = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="scan_clamd_sockett"):
        Settings(tmp_path, sqlite_url(tmp_path), scan_clamd_sockett="/run/clamd.sock")
    with pytest.raises(ValidationError):
        Settings(tmp_path, sqlite_url(tmp_path), max_body_bytes="1")
