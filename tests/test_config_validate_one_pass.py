"""`trygg config validate` as a new user meets it: every problem in one pass, never a traceback,
and the files the config names checked (present, private keys at safe modes)."""

import os
import stat

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import config as cfgmod
from agent.cli import main
from agent.provision import init_device
from base.configcheck import check_config
from base.filecheck import ServiceUser
from base.keys import Identity, write_public
from base.labpki import make_lab_pki


@pytest.fixture
def device(tmp_path):
    pki = make_lab_pki(tmp_path / "pki", ["hem-v"], days=90)
    center = tmp_path / "center.pub"
    write_public(Identity.generate("center").public(), center)
    cert, key = pki.client("hem-v")
    out = init_device("hem-v", "127.0.0.1:8883", pki.ca, cert, key, center, tmp_path / "dev")
    return out["config"], key


def validate(path):
    return CliRunner().invoke(main, ["config", "validate", str(path)])


def test_a_good_config_still_says_ok(device):
    config, _ = device
    result = validate(config)
    assert result.exit_code == 0 and result.stdout.strip() == f"{config}: ok", result.output


def test_every_problem_is_listed_in_one_pass(device):
    config, tls_key = device
    text = config.read_text()
    text = text.replace('id = "hem-v"', 'id = "hem-v"\ncolour = "blå"')  # schema: unknown key
    text = text.replace("[broker]", "[broker]\nkeepalive_s = 2")  # schema: out of range
    text += "\n[uplink]\ninflight = = 3\n"  # TOML
    outbox_dir = config.parent / "state"
    text = text.replace(f'path = "{config.parent / "outbox.db"}"', f'path = "{outbox_dir / "outbox.db"}"')
    config.write_bytes(text.encode().replace("blå".encode(), b"bl\xe5"))  # latin-1: not UTF-8
    os.chmod(tls_key, 0o644)
    os.chmod(config.parent / "device.key", 0o644)
    (config.parent / "center.pub").unlink()
    ca = tls_key.parent / "ca.crt"
    ca.unlink()

    result = validate(config)

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    wanted = ["not UTF-8", "not valid TOML", "home.colour: unknown key", "broker.keepalive_s:",
              f"broker.key: {tls_key} is readable by others (mode 0644); run chmod 600 {tls_key}",
              "keys.device:", f"keys.center: no such file {config.parent / 'center.pub'}", f"broker.ca: no such file {ca}",
              f"outbox.path: directory {outbox_dir} does not exist"]
    for words in wanted:
        assert any(words in line for line in lines), (words, lines)


def test_a_tls_key_at_0640_with_the_service_group_passes_and_0604_does_not(device):
    config, tls_key = device
    os.chmod(tls_key, 0o640)
    me = ServiceUser.lookup(f"nobody-{os.getpid()}")
    assert check_config(config, lambda d: cfgmod.DeviceConfig, me).ok
    os.chmod(tls_key, 0o604)
    assert any("broker.key" in e for e in check_config(config, lambda d: cfgmod.DeviceConfig, me).errors)


def test_a_missing_config_and_a_directory_say_so_in_one_line(tmp_path):
    for path in (tmp_path / "nope.toml", tmp_path):
        result = validate(path)
        assert result.exit_code != 0 and "Traceback" not in result.output


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_lines_never_a_traceback(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("any") / "trygg.toml"
    path.write_bytes(data)
    checked = check_config(path, lambda d: cfgmod.DeviceConfig)
    assert checked.errors and all(isinstance(e, str) and e for e in checked.errors)
    assert stat.S_ISREG(path.stat().st_mode)


def test_a_broken_table_header_is_one_error_not_a_list_of_keys_in_the_wrong_table(device):
    config, _ = device
    config.write_text(config.read_text().replace("[broker]", "[broker") + '\n[log]\nlevel = "loud"\n')
    lines = validate(config).stderr.splitlines()[1:]
    assert lines[0].endswith("not valid TOML: expected ']' at the end of a table declaration"), lines
    assert lines[1:] == ["log.level: input should be 'debug', 'info', 'warning' or 'error', got 'loud'"], lines


def test_a_key_at_0640_needs_the_named_service_users_group_and_any_group_when_none_is_named(device, tmp_path):
    from pydantic import BaseModel

    from base.configbase import BrokerConfig

    class Unnamed(BaseModel):  # another part's config that names no service user
        broker: BrokerConfig

    config, tls_key = device
    os.chown(tls_key, -1, 65534)  # a group that is not the service user's
    os.chmod(tls_key, 0o640)
    assert any(e.startswith("broker.key:") for e in check_config(config, lambda d: cfgmod.DeviceConfig).errors)
    other = tmp_path / "other.toml"
    other.write_text(f'[broker]\nhost = "h"\nca = "{tls_key.parent / "ca.crt"}"\ncert = "{tls_key.with_suffix(".crt")}"\n'
                     f'key = "{tls_key}"\n')
    assert check_config(other, lambda d: Unnamed).ok
    os.chmod(tls_key, 0o644)
    assert [e.split(":")[0] for e in check_config(other, lambda d: Unnamed).errors] == ["broker.key"]
