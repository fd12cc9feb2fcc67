"""`trygg config validate` on a center config checks the files it names, as on a device: the
center's key, a next key when there, the homes directory, the store, the console's TLS files and
both brokers' files; a key at 0640 must have the group of the center's service user."""

import os

import pytest
from click.testing import CliRunner

from agent.cli import main
from base.configcheck import check_config
from base.filecheck import ServiceUser
from base.labpki import make_lab_pki
from center.config import CenterConfig
from center.provision import init_center


@pytest.fixture
def center(tmp_path):
    pki = make_lab_pki(tmp_path / "pki", ["center"], days=90)
    cert, key = pki.client("center")
    out = init_center("127.0.0.1:8883", pki.ca, cert, key, tmp_path / "center", state_dir=tmp_path / "state")
    return out["config"], pki, key


def validate(path):
    return CliRunner().invoke(main, ["config", "validate", str(path)])


def add(config, text: str) -> None:
    config.write_text(config.read_text().rstrip("\n") + "\n\n" + text.strip("\n") + "\n")


def test_a_fresh_center_config_says_ok(center):
    config, _, _ = center
    result = validate(config)
    assert result.exit_code == 0 and result.stdout.strip() == f"{config}: ok", result.output


def test_the_files_a_center_config_names_are_checked_in_one_pass(center, tmp_path):
    config, _pki, tls_key = center
    state = tmp_path / "state"
    os.chmod(config.parent / "center.key", 0o644)
    (config.parent / "center.next.key").write_bytes(b"x")
    os.chmod(config.parent / "center.next.key", 0o644)
    (config.parent / "homes").rmdir()
    console_key = tmp_path / "console.key"
    console_key.write_bytes(b"k")
    os.chmod(console_key, 0o644)
    (state / "center.db").write_bytes(b"")
    os.chmod(state / "center.db", 0o644)
    fallback_ca = tmp_path / "region-ca.crt"
    add(config, f'[web]\ncert = "{tmp_path / "console.crt"}"\nkey = "{console_key}"\n\n'
                f'[broker_fallback]\nhost = "127.0.0.1"\nport = 8884\nca = "{fallback_ca}"\n'
                f'cert = "{tls_key.with_suffix(".crt")}"\nkey = "{tls_key}"\n')

    result = validate(config)

    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.splitlines()[1:]
    named = {line.split(":")[0] for line in lines}
    assert named == {"center.key", "center.next_key", "center.homes_dir", "center.store", "web.cert", "web.key",
                     "broker_fallback.ca"}, lines
    assert f"center.key: {config.parent / 'center.key'} is readable by others (mode 0644)" in "\n".join(lines)
    assert f"broker_fallback.ca: no such file {fallback_ca}" in lines


def test_a_center_key_at_0640_needs_the_center_service_users_group(center):
    config, _, _ = center
    assert CenterConfig.SERVICE_USER == "trygg-center"  # the units' User= (systemd/trygg-center.service)
    key = config.parent / "center.key"
    me = ServiceUser.lookup(f"nobody-{os.getpid()}")  # no such user: whoever runs the test
    os.chown(key, -1, me.gid)
    os.chmod(key, 0o640)
    assert check_config(config, lambda d: CenterConfig, me).ok
    os.chown(key, -1, 65534 if me.gid != 65534 else 65533)  # a group that is not the service user's
    errors = check_config(config, lambda d: CenterConfig, me).errors
    assert [e.split(":")[0] for e in errors] == ["center.key"], errors
    result = validate(config)  # as a technician runs it: the config's own service user counts
    assert result.exit_code == 1 and result.stderr.splitlines()[1:] == [
        f"center.key: {key} is readable by others (mode 0640); run chmod 600 {key}"], result.output
