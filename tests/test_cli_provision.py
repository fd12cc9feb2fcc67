"""Provisioning through the real `trygg` command: what a technician types on install day.

Runs `agent.cli:main` with click's CliRunner (and once the installed `trygg` script in a real
process), against real files under tmp_path and a throwaway lab PKI.
"""

import base64
import datetime
import json
import os
import stat
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import main
from base.cliutil import EXIT_NOT_RUNNING
from base.errors import ConfigError
from base.provisioning import parse_broker

BROKER = "localhost:8883"


@dataclass
class Pki:
    ca: Path
    center: tuple[Path, Path]
    device: tuple[Path, Path]


def _self_signed(directory: Path, names: list[str]) -> Pki:
    """Fallback when base.labpki is unavailable: self-signed PEM files are enough for provisioning."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(mode=0o700, parents=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    paths = {}
    for name in ["ca", *names]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        crt, pem_key = directory / f"{name}.crt", directory / f"{name}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(pem_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        paths[name] = (crt, pem_key)
    return Pki(paths["ca"][0], paths[names[0]], paths[names[1]])


@pytest.fixture
def pki(tmp_path) -> Pki:
    names = ["center", "hem-1"]
    try:
        from base.labpki import make_lab_pki

        lab = make_lab_pki(tmp_path / "pki", names)
        return Pki(lab.ca, lab.client("center"), lab.client("hem-1"))
    except Exception:  # noqa: BLE001 - labpki is another helper's work in progress
        return _self_signed(tmp_path / "pki-fallback", names)


def trygg(*args) -> Result:
    """Invoke the CLI in-process; a Python traceback (anything but SystemExit) fails the test."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("trygg crashed with a traceback:\n" + "".join(traceback.format_exception(*result.exc_info)))
    return result



def center_init(pki: Pki, directory: Path, *extra, broker: str = BROKER):
    cert, key = pki.center
    return trygg("center", "init", "--dir", directory, "--broker", broker, "--ca", pki.ca, "--cert", cert,
                 "--key", key, *extra)


def device_init(pki: Pki, directory: Path, center_pub: Path, *extra, home: str = "hem-1", broker: str = BROKER):
    cert, key = pki.device
    return trygg("init", "--home", home, "--broker", broker, "--ca", pki.ca, "--cert", cert, "--key", key,
                 "--center-key", center_pub, "--dir", directory, *extra)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one clear line, got: {text!r}"
    return lines[0]


@pytest.fixture
def center(pki, tmp_path) -> Path:
    directory = tmp_path / "center"
    result = center_init(pki, directory)
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
def device(pki, center, tmp_path) -> Path:
    directory = tmp_path / "dev"
    result = device_init(pki, directory, center / "center.pub")
    assert result.exit_code == 0, result.output
    return directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the happy path ----------------------------------------------------------------------


def test_center_then_device_init_write_configs_that_validate(pki, center, tmp_path):
    directory = tmp_path / "dev"
    result = device_init(pki, directory, center / "center.pub")
    assert result.exit_code == 0, result.output
    assert f"wrote {directory / 'trygg.toml'}" in result.stdout
    assert str(directory / "device.pub") in result.stdout

    for config in (directory / "trygg.toml", center / "center.toml"):
        check = trygg("config", "validate", config)
        assert check.exit_code == 0, check.output
        assert check.stdout.strip() == f"{config}: ok"
    check = trygg("config", "validate", "--config", directory / "trygg.toml")
    assert check.exit_code == 0, check.output

    assert {"trygg.toml", "device.key", "device.pub", "center.pub"} <= set(snapshot(directory))
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert (directory / "center.pub").read_bytes() == (center / "center.pub").read_bytes()
    assert json.loads((directory / "device.pub").read_text())["name"] == "hem-1"


def test_private_keys_are_readable_by_owner_only(center, device):
    assert mode(device / "device.key") == 0o600
    assert mode(center / "center.key") == 0o600


def test_device_config_names_home_broker_and_tls_files(pki, device):
    shown = trygg("config", "show", "--config", device / "trygg.toml")
    assert shown.exit_code == 0, shown.output
    cfg = json.loads(shown.stdout)
    assert cfg["home"]["id"] == "hem-1"
    assert (cfg["broker"]["host"], cfg["broker"]["port"]) == ("localhost", 8883)
    assert cfg["broker"]["key"] == str(pki.device[1].resolve())
    assert cfg["keys"]["device"] == str(device / "device.key")


def test_config_show_never_prints_private_key_material(pki, device):
    secret = json.loads((device / "device.key").read_text())
    tls_key = pki.device[1].read_text()

    shown = trygg("config", "show", "--config", device / "trygg.toml")

    assert shown.exit_code == 0, shown.output
    json.loads(shown.stdout)
    for field in ("sign", "kem_private"):
        value = secret[field]
        assert len(base64.b64decode(value)) >= 32
        assert value not in shown.output
    assert "PRIVATE KEY" not in shown.output
    assert tls_key.splitlines()[1] not in shown.output


def test_center_enrolls_the_device_public_key_once(center, device):
    config = center / "center.toml"
    first = trygg("center", "add-home", device / "device.pub", "--config", config)
    assert first.exit_code == 0, first.output
    enrolled = center / "homes" / "hem-1.pub"
    assert enrolled.read_bytes() == (device / "device.pub").read_bytes()

    again = trygg("center", "add-home", device / "device.pub", "--config", config)
    assert again.exit_code == 1
    assert "--force" in again.stderr


# -- refusing to overwrite ---------------------------------------------------------------


def test_device_init_rerun_refuses_and_changes_nothing(pki, center, device):
    before = snapshot(device)

    again = device_init(pki, device, center / "center.pub")

    assert again.exit_code != 0
    assert "--force" in one_line(again.stderr)
    assert snapshot(device) == before


def test_center_init_rerun_refuses_and_changes_nothing(pki, center):
    before = snapshot(center)

    again = center_init(pki, center)

    assert again.exit_code != 0
    assert "--force" in one_line(again.stderr)
    assert snapshot(center) == before


def test_device_init_with_force_replaces_the_identity(pki, center, device):
    old_key = (device / "device.key").read_bytes()
    old_pub = (device / "device.pub").read_bytes()

    again = device_init(pki, device, center / "center.pub", "--force")

    assert again.exit_code == 0, again.output
    assert (device / "device.key").read_bytes() != old_key
    assert (device / "device.pub").read_bytes() != old_pub
    assert mode(device / "device.key") == 0o600
    assert trygg("config", "validate", device / "trygg.toml").exit_code == 0


def test_center_init_with_force_replaces_the_center_key(pki, center):
    old_key = (center / "center.key").read_bytes()
    again = center_init(pki, center, "--force")
    assert again.exit_code == 0, again.output
    assert (center / "center.key").read_bytes() != old_key
    assert mode(center / "center.key") == 0o600


# -- bad input: one clear line, nothing written -----------------------------------------


@pytest.mark.parametrize("broker", ["host:88x3", "nohost", ":8883", "host:", "host:0", "host:70000", "host:²"])
def test_bad_broker_gives_one_clear_line_and_writes_nothing(pki, center, tmp_path, broker):
    directory = tmp_path / "dev"

    result = device_init(pki, directory, center / "center.pub", broker=broker)

    assert result.exit_code == 1
    assert one_line(result.stderr).startswith("trygg: --broker: ")
    assert not directory.exists()


@pytest.mark.parametrize("broker", ["host:88x3", "nohost"])
def test_bad_broker_for_center_gives_one_clear_line_and_writes_nothing(pki, tmp_path, broker):
    directory = tmp_path / "center"
    result = center_init(pki, directory, broker=broker)
    assert result.exit_code == 1
    assert one_line(result.stderr).startswith("trygg: --broker: ")
    assert not directory.exists()


def test_broker_port_message_names_the_bad_port(pki, center, tmp_path):
    result = device_init(pki, tmp_path / "dev", center / "center.pub", broker="host:88x3")
    assert "'88x3'" in result.stderr


@pytest.mark.parametrize("home", ["Bad Home!", "HEM-1", "", "hem-1\n"], ids=["spaces", "upper", "empty", "newline"])
def test_bad_home_gives_one_clear_line_and_writes_nothing(pki, center, tmp_path, home):
    directory = tmp_path / "dev"

    result = device_init(pki, directory, center / "center.pub", home=home)

    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("trygg: --home: ")
    assert repr(home) in line
    assert not directory.exists()


def test_tls_key_readable_by_others_is_refused(pki, center, tmp_path):
    key = pki.device[1]
    os.chmod(key, 0o644)
    directory = tmp_path / "dev"

    result = device_init(pki, directory, center / "center.pub")

    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert str(key) in line and "chmod 600" in line
    assert not directory.exists()


def test_center_tls_key_readable_by_others_is_refused(pki, tmp_path):
    os.chmod(pki.center[1], 0o644)
    directory = tmp_path / "center"
    result = center_init(pki, directory)
    assert result.exit_code == 1
    assert "chmod 600" in one_line(result.stderr)
    assert not directory.exists()


def test_missing_tls_file_is_named(pki, center, tmp_path):
    cert, key = pki.device
    directory = tmp_path / "dev"
    result = trygg("init", "--home", "hem-1", "--broker", BROKER, "--ca", tmp_path / "nope.crt", "--cert", cert,
                   "--key", key, "--center-key", center / "center.pub", "--dir", directory)
    assert result.exit_code == 1
    assert one_line(result.stderr).startswith("trygg: --ca: ")
    assert not directory.exists()


def test_center_key_that_is_not_a_public_key_file_is_refused(pki, center, tmp_path):
    directory = tmp_path / "dev"
    result = device_init(pki, directory, center / "center.key")  # the private file by mistake
    assert result.exit_code == 1
    assert "center.key" in one_line(result.stderr)
    assert not directory.exists()


broker_texts = st.text(max_size=30) | st.builds(
    "{}:{}".format, st.text(max_size=10), st.text(st.characters(categories=("Nd", "No")), max_size=6))


@settings(max_examples=300, deadline=None)
@given(broker_texts)
def test_any_broker_text_is_parsed_or_refused_with_config_error(text):
    try:
        host, port = parse_broker(text)
    except ConfigError as exc:
        assert str(exc).startswith("--broker: ")
        return
    assert host and 1 <= port <= 65535


# -- daemon commands without a daemon ----------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["simulate", "alarm"],
                                     ["simulate", "event", "--count", "3"]])
def test_daemon_commands_say_the_daemon_is_not_running(device, command):
    result = trygg(*command, "--config", device / "trygg.toml")
    assert result.exit_code == EXIT_NOT_RUNNING == 3
    assert "not running" in one_line(result.stderr)


def test_config_flag_before_the_command_also_works(device):
    result = trygg("--config", device / "trygg.toml", "status")
    assert result.exit_code == 3
    assert "not running" in result.stderr


def test_installed_trygg_command_exits_3_when_no_daemon_runs(device):
    exe = Path(sys.executable).with_name("trygg")
    if not exe.exists():
        pytest.skip(f"no installed trygg script next to {sys.executable}")
    proc = subprocess.run([str(exe), "simulate", "alarm", "--config", str(device / "trygg.toml")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    assert "not running" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- many homes at once: trygg center add-homes ------------------------------------------


@pytest.fixture
def umask_022():
    """A known umask, so the enrolled files' modes can be asserted (add-home leaves them to it)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def home_keys(directory: Path, *homes: str) -> dict[str, Path]:
    """device.pub files as `trygg init` writes them, one per home, in directory."""
    from base.keys import Identity, write_public

    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for home in homes:
        write_public(Identity.generate(home).public(), directory / f"{home}.pub", force=True)
        out[home] = directory / f"{home}.pub"
    return out


def add_homes(center: Path, *args) -> Result:
    return trygg("center", "add-homes", *args, "--config", center / "center.toml")


def enrolled(center: Path) -> dict[str, bytes]:
    return snapshot(center / "homes")


def test_add_homes_enrolls_every_key_in_a_folder_like_add_home(center, tmp_path, umask_022):
    keys = home_keys(tmp_path / "batch", "hem-1", "hem-2", "hem-3")
    single = home_keys(tmp_path / "single", "hem-9")["hem-9"]
    assert trygg("center", "add-home", single, "--config", center / "center.toml").exit_code == 0

    result = add_homes(center, tmp_path / "batch")

    assert result.exit_code == 0, result.output
    assert one_line(result.stdout).startswith("3 enrolled, 0 replaced, 0 unchanged")
    homes = center / "homes"
    assert enrolled(center) == {f"{h}.pub": p.read_bytes() for h, p in {**keys, "hem-9": single}.items()}
    assert {mode(homes / f"{h}.pub") for h in keys} == {mode(homes / "hem-9.pub")} == {0o644}
    assert not list(homes.glob("*.tmp"))


def test_add_homes_reads_a_list_with_comments_and_paths_relative_to_it(center, tmp_path, monkeypatch):
    keys = home_keys(tmp_path / "install" / "keys", "hem-1", "hem-2")
    other = home_keys(tmp_path / "elsewhere", "hem-3")["hem-3"]
    home_keys(tmp_path / "install" / "keys", "hem-4")  # in the folder but not listed: not enrolled
    listing = tmp_path / "install" / "homes.txt"
    listing.write_text(f"# municipality batch 1\n\nkeys/hem-1.pub\n   # indented comment\n  keys/hem-2.pub  \n{other}\n")
    monkeypatch.chdir(tmp_path)  # relative to the list file, not to where the command runs

    result = add_homes(center, "--list", listing)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 enrolled, 0 replaced, 0 unchanged")
    assert enrolled(center) == {"hem-1.pub": keys["hem-1"].read_bytes(), "hem-2.pub": keys["hem-2"].read_bytes(),
                                "hem-3.pub": other.read_bytes()}


@pytest.mark.parametrize("bad", ["not json", "private key", "bad home id", "missing"])
def test_one_bad_file_among_good_ones_enrolls_nothing(center, tmp_path, bad):
    from base.keys import Identity, write_private, write_public

    folder = tmp_path / "batch"
    home_keys(folder, "hem-1", "hem-2", "hem-4")
    wrong = folder / "hem-3.pub"
    if bad == "not json":
        wrong.write_text('{"format": "trygg-public-key-v1", "name": "hem-3", "sig')  # cut short in a copy
    elif bad == "private key":
        write_private(Identity.generate("hem-3"), wrong)
    elif bad == "bad home id":
        write_public(Identity.generate("Hem 3").public(), wrong)
    listing = tmp_path / "homes.txt"
    listing.write_text("".join(f"batch/hem-{n}.pub\n" for n in (1, 2, 3, 4)))

    result = add_homes(center, "--list", listing)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"trygg: {wrong}: ")
    assert lines[1] == "trygg: 1 of 4 key files refused; nothing was enrolled"
    assert result.stdout == ""
    assert enrolled(center) == {}


def test_add_homes_refuses_what_add_home_refuses_with_the_same_words(center, tmp_path):
    from base.keys import Identity, write_public

    folder = tmp_path / "batch"
    folder.mkdir()
    write_public(Identity.generate("Hem 3").public(), folder / "x.pub")

    single = trygg("center", "add-home", folder / "x.pub", "--config", center / "center.toml")
    bulk = add_homes(center, folder)

    assert single.exit_code == bulk.exit_code == 1
    assert one_line(single.stderr) == bulk.stderr.splitlines()[0]
    assert enrolled(center) == {}


def test_every_bad_file_gets_its_own_line(center, tmp_path):
    folder = tmp_path / "batch"
    home_keys(folder, "hem-1")
    (folder / "a.pub").write_text("")
    (folder / "b.pub").write_text("[]")

    result = add_homes(center, folder)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines[:2]] == [str(folder / "a.pub"), str(folder / "b.pub")]
    assert lines[2] == "trygg: 2 of 3 key files refused; nothing was enrolled"
    assert enrolled(center) == {}


def test_add_homes_run_again_changes_nothing_and_says_unchanged(center, tmp_path):
    home_keys(tmp_path / "batch", "hem-1", "hem-2")
    assert add_homes(center, tmp_path / "batch").exit_code == 0
    before = enrolled(center)
    stamps = {p.name: p.stat().st_mtime_ns for p in (center / "homes").iterdir()}
    home_keys(tmp_path / "batch", "hem-3")  # the installer's folder grew

    again = add_homes(center, tmp_path / "batch")

    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("1 enrolled, 0 replaced, 2 unchanged")
    after = enrolled(center)
    assert {k: after[k] for k in before} == before and set(after) == {"hem-1.pub", "hem-2.pub", "hem-3.pub"}
    assert {p: (center / "homes" / p).stat().st_mtime_ns for p in stamps} == stamps  # not even rewritten


def test_same_key_reformatted_is_unchanged_not_a_conflict(center, tmp_path):
    keys = home_keys(tmp_path / "batch", "hem-1")
    assert add_homes(center, tmp_path / "batch").exit_code == 0
    keys["hem-1"].write_text(json.dumps(json.loads(keys["hem-1"].read_text())))  # other whitespace, same key

    again = add_homes(center, tmp_path / "batch", "--json")

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)[0]["result"] == "unchanged"


def test_two_files_for_one_home_in_a_batch_are_refused(center, tmp_path):
    first = home_keys(tmp_path / "a", "hem-1")["hem-1"]
    second = home_keys(tmp_path / "b", "hem-1")["hem-1"]  # another key, same home
    good = home_keys(tmp_path / "c", "hem-2")["hem-2"]
    listing = tmp_path / "homes.txt"
    listing.write_text(f"{first}\n{good}\n{second}\n")

    result = add_homes(center, "--list", listing, "--force")  # --force never picks one of two

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"trygg: {second}: home hem-1 is also in {first}; give one key per home"
    assert lines[1] == "trygg: 1 of 3 key files refused; nothing was enrolled"
    assert enrolled(center) == {}


def test_the_same_file_listed_twice_is_refused(center, tmp_path):
    key = home_keys(tmp_path / "a", "hem-1")["hem-1"]
    listing = tmp_path / "homes.txt"
    listing.write_text("a/hem-1.pub\n" f"{key}\n")

    result = add_homes(center, "--list", listing)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"trygg: {key}: listed twice"
    assert enrolled(center) == {}


def test_a_home_enrolled_with_another_key_needs_force(center, tmp_path, umask_022):
    old = home_keys(tmp_path / "old", "hem-1")["hem-1"]
    assert trygg("center", "add-home", old, "--config", center / "center.toml").exit_code == 0
    new = home_keys(tmp_path / "new", "hem-1", "hem-2")

    refused = add_homes(center, tmp_path / "new")

    assert refused.exit_code == 1
    target = center / "homes" / "hem-1.pub"
    assert refused.stderr.splitlines()[0] == (f"trygg: {new['hem-1']}: home hem-1 is enrolled with a different key "
                                              f"({target}); use --force to replace it")
    assert enrolled(center) == {"hem-1.pub": old.read_bytes()}  # hem-2 was good, and still not enrolled

    forced = add_homes(center, tmp_path / "new", "--force")

    assert forced.exit_code == 0, forced.output
    assert forced.stdout.splitlines() == [f"replaced the key of hem-1 ({new['hem-1']})",
                                          f"1 enrolled, 1 replaced, 0 unchanged (2 homes in {center / 'homes'})"]
    assert enrolled(center) == {"hem-1.pub": new["hem-1"].read_bytes(), "hem-2.pub": new["hem-2"].read_bytes()}
    assert mode(target) == mode(center / "homes" / "hem-2.pub") == 0o644


def test_add_homes_json_lists_each_home_file_and_result(center, tmp_path):
    keys = home_keys(tmp_path / "batch", "hem-1", "hem-2")
    assert add_homes(center, tmp_path / "batch").exit_code == 0
    keys.update(home_keys(tmp_path / "batch", "hem-2", "hem-3"))  # hem-2 re-keyed, hem-3 new

    result = add_homes(center, tmp_path / "batch", "--force", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"home": "hem-1", "file": str(keys["hem-1"]), "result": "unchanged"},
        {"home": "hem-2", "file": str(keys["hem-2"]), "result": "replaced"},
        {"home": "hem-3", "file": str(keys["hem-3"]), "result": "enrolled"},
    ]
    assert enrolled(center) == {f"{h}.pub": p.read_bytes() for h, p in keys.items()}


@pytest.mark.parametrize("args", [[], ["FOLDER", "--list", "LIST"], ["EMPTY"], ["--list", "EMPTY_LIST"],
                                  ["--list", "NO_LIST"]])
def test_add_homes_without_exactly_one_source_of_keys_says_so(center, tmp_path, args):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    home_keys(tmp_path / "batch", "hem-1")
    places = {"FOLDER": tmp_path / "batch", "LIST": tmp_path / "empty.txt", "EMPTY": tmp_path / "empty",
              "EMPTY_LIST": tmp_path / "empty.txt", "NO_LIST": tmp_path / "nope.txt"}

    result = add_homes(center, *[places.get(a, a) for a in args])

    assert result.exit_code == 1
    assert one_line(result.stderr).startswith("trygg: ")
    assert enrolled(center) == {}


def test_center_init_puts_the_store_in_the_state_dir_the_services_may_write(pki, tmp_path):
    """The packaged units make /etc read-only for the services: the store must live elsewhere."""
    from center.config import load

    made = center_init(pki, tmp_path / "etc", "--state-dir", tmp_path / "var")

    assert made.exit_code == 0, made.output
    assert load(tmp_path / "etc" / "center.toml").center.store == (tmp_path / "var" / "center.db").resolve()
    assert (tmp_path / "var").is_dir()


def test_the_center_default_config_is_its_own_folder_and_the_earlier_default_still_found(tmp_path, monkeypatch):
    from base import configpath

    monkeypatch.delenv(configpath.CONFIG_ENV, raising=False)
    new, earlier = tmp_path / "trygg-center" / "center.toml", tmp_path / "trygg" / "center.toml"
    monkeypatch.setattr(configpath, "CENTER_CONFIG", new)
    monkeypatch.setattr(configpath, "EARLIER_CENTER_CONFIG", earlier)
    assert configpath.config_path(None, new) == new  # neither exists: the default, named in errors
    earlier.parent.mkdir()
    earlier.write_text("")
    assert configpath.config_path(None, new) == earlier
    new.parent.mkdir()
    new.write_text("")
    assert configpath.config_path(None, new) == new
    assert configpath.config_path(str(earlier), new) == earlier  # --config always wins
