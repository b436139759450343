"""config.toml's key stores: ``default_store`` and ``[stores.NAME]`` tables. A misspelt key,
a missing one, two PIN sources or none, an unknown default store: one line naming the
problem; the PIN comes from the environment or a file only its owner may read, never
from config.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from signgate.config import load_settings
from signgate.errors import ConfigError

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TABLE = f'[stores.hsm]\ntype = "pkcs11"\nmodule = "{MODULE}"\ntoken = "signgate"\n'


def refused(data_dir: Path, text: str) -> str:
    (data_dir / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(data_dir)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{data_dir.resolve() / 'config.toml'}: ")
    return message.split(": ", 1)[1]


def test_a_store_table_reads_back(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('default_store = "hsm"\n' + TABLE
                                          + 'pin_env = "HSM_PIN"\n')
    settings = load_settings(tmp_path)
    assert settings.default_store == "hsm"
    store = settings.stores["hsm"]
    assert (store.type, store.module, store.token, store.pin_env, store.pin_file) == (
        "pkcs11", MODULE, "signgate", "HSM_PIN", None)
    assert load_settings(tmp_path.parent).default_store == "soft"  # no config: the vault


@pytest.mark.parametrize(("text", "why"), [
    ('default_store = "hsm"\n', "default_store 'hsm' names no store: it must be 'soft' or "
                                "the name of a [stores.NAME] table (there is none)"),
    ('default_store = "hsm2"\n' + TABLE + 'pin_env = "P"\n',
     "default_store 'hsm2' names no store: it must be 'soft' or the name of a [stores.NAME] "
     "table (hsm)"),
    (TABLE + 'pin_env = "P"\npinfile = "/p"\n',
     "[stores.hsm]: unknown key 'pinfile' (did you mean 'pin_file'?)"),
    (TABLE + 'pin = "1234"\n', "[stores.hsm]: unknown key 'pin' (did you mean 'pin_env'?)"),
    (TABLE, "[stores.hsm]: set exactly one of pin_env and pin_file (the PIN itself never "
            "goes into config.toml)"),
    (TABLE + 'pin_env = "P"\npin_file = "/p"\n',
     "[stores.hsm]: set exactly one of pin_env and pin_file (the PIN itself never goes into "
     "config.toml)"),
    ('[stores.hsm]\ntype = "pkcs11"\ntoken = "t"\npin_env = "P"\n',
     "[stores.hsm]: module must be set (a non-empty string)"),
    ('[stores.hsm]\ntype = "pkcs11"\nmodule = "libsofthsm2.so"\ntoken = "t"\npin_env = "P"\n',
     "[stores.hsm]: module must be an absolute path"),
    ('[stores.hsm]\ntype = "kms"\nmodule = "/m.so"\ntoken = "t"\npin_env = "P"\n',
     '[stores.hsm]: type must be "pkcs11"'),
    (TABLE + 'pin_file = "pin.txt"\n', "[stores.hsm]: pin_file must be an absolute path"),
    (TABLE.replace("hsm", "soft") + 'pin_env = "P"\n',
     "[stores.soft]: a store name is [a-z0-9][a-z0-9_-]* and not 'soft' (the software "
     "vault)"),
    (TABLE + 'pin_env = "P"\n' + TABLE.replace("[stores.hsm]", "[stores.again]")
     + 'pin_env = "P"\n', "two [stores.NAME] tables name the same token of the same module"),
    ('stores = "hsm"\n', "stores must be [stores.NAME] tables"),
])
def test_a_bad_store_table_is_one_line(tmp_path: Path, text: str, why: str) -> None:
    assert refused(tmp_path, text) == why


def test_the_pin_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text(TABLE + 'pin_env = "HSM_TEST_PIN_X"\n')
    store = load_settings(tmp_path).stores["hsm"]
    monkeypatch.delenv("HSM_TEST_PIN_X", raising=False)
    with pytest.raises(ConfigError) as info:
        store.pin("hsm")
    assert str(info.value) == ("key store 'hsm': the environment variable HSM_TEST_PIN_X "
                               "(pin_env) is not set")
    monkeypatch.setenv("HSM_TEST_PIN_X", "4321")
    assert store.pin("hsm") == "4321"


def test_the_pin_file_must_be_the_owners_alone(tmp_path: Path) -> None:
    pin_file = tmp_path / "hsm-pin"
    (tmp_path / "config.toml").write_text(TABLE + f'pin_file = "{pin_file}"\n')
    store = load_settings(tmp_path).stores["hsm"]
    with pytest.raises(ConfigError, match=f"cannot read the PIN file {pin_file}: No such file"):
        store.pin("hsm")
    pin_file.write_text("24681357\n")
    for mode in (0o644, 0o640, 0o604):
        os.chmod(pin_file, mode)
        with pytest.raises(ConfigError) as info:
            store.pin("hsm")
        assert str(info.value) == (f"key store 'hsm': the PIN file {pin_file} is readable by "
                                   f"others (mode {mode:o}); run chmod 600")
        assert "24681357" not in str(info.value)
    os.chmod(pin_file, 0o600)
    assert store.pin("hsm") == "24681357"  # without the line's end
    pin_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        store.pin("hsm")
