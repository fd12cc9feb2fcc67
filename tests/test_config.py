"""Configuration: a technician gets one line per mistake, naming the key, and nothing else.

Real TOML files under tmp_path; hypothesis feeds arbitrary values to every section.
"""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import config as cfgmod
from center import config as center_config
from agent.config import DeviceConfig
from center.config import CenterConfig
from base.errors import ConfigError, TryggError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "trygg.example.toml"

DEVICE_TOML = """\
[home]
id = "hem-0042"

[broker]
host = "broker.example.org"
port = 8883
ca = "pki/ca.crt"
cert = "pki/hem-0042.crt"
key = "pki/hem-0042.key"
"""

CENTER_TOML = """\
[center]
name = "nattpatrull"

[broker]
host = "broker.example.org"
ca = "/etc/trygg/pki/ca.crt"
cert = "/etc/trygg/pki/center.crt"
key = "/etc/trygg/pki/center.key"
"""


def device_toml(**sections: str) -> str:
    """The valid device config with lines added to existing sections or as new sections."""
    text = DEVICE_TOML
    for name, body in sections.items():
        header = f"[{name}]\n"
        text = text.replace(header, header + body + "\n") if header in text else text + f"\n{header}{body}\n"
    return text


@pytest.fixture
def write(tmp_path):
    def _write(text: str, name: str = "trygg.toml", where: Path | None = None) -> Path:
        path = (where or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def problems(exc: ConfigError) -> list[str]:
    """The error lines after the `source:` header line."""
    header, *lines = str(exc).split("\n")
    assert header.endswith(":")
    return lines


# -- good files --------------------------------------------------------------------------


def test_minimal_device_config_loads_with_documented_defaults(write):
    cfg = cfgmod.load(write(DEVICE_TOML))
    assert cfg.home.id == "hem-0042"
    assert (cfg.broker.host, cfg.broker.port) == ("broker.example.org", 8883)
    assert cfg.outbox.max_bytes == 64 * 1024 * 1024
    assert cfg.uplink.tcp_nodelay is True
    assert cfg.simulate.enabled is False


def test_center_config_loads(write):
    cfg = center_config.load(write(CENTER_TOML, "center.toml"))
    assert cfg.center.name == "nattpatrull"
    assert cfg.broker.key == Path("/etc/trygg/pki/center.key")


@pytest.mark.parametrize("url, refused", [
    ("postgresql://trygg:hemligt@db.example/trygg", True),
    ("postgresql://trygg@db.example/trygg", False),
    ("@", False),  # a file named "@" next to the config: odd, but no URL and no password
    ("sqlite:////var/lib/trygg/center@1.db", False),
])
def test_a_password_in_the_store_url_is_refused_and_nothing_else_is_taken_for_one(write, url, refused):
    path = write(CENTER_TOML + f'\n[store]\nurl = "{url}"\n', "center.toml")
    if refused:
        with pytest.raises(ConfigError, match="pgpass"):
            center_config.load(path)
    else:
        assert center_config.load(path).store.url == url


def test_example_config_in_the_repository_loads():
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE.relative_to(REPO)} has not been written yet")
    cfg = cfgmod.load(EXAMPLE)
    assert isinstance(cfg, DeviceConfig)


# -- one line per bad value -------------------------------------------------------------


def test_bad_port_is_one_line_naming_the_key_and_the_value(write):
    path = write(DEVICE_TOML.replace("port = 8883", 'port = "88x3"'))
    with pytest.raises(ConfigError) as err:
        cfgmod.load(path)
    assert str(err.value).split("\n")[0] == f"{path}:"
    [line] = problems(err.value)
    assert line.startswith("broker.port: ")
    assert line.endswith("got '88x3'")


@pytest.mark.parametrize(
    "section, line, key, shown",
    [
        ("broker", "keepalive_s = 1", "broker.keepalive_s", "1"),
        ("outbox", "max_bytes = 10", "outbox.max_bytes", "10"),
        ("outbox", "ttl_event_s = -5.0", "outbox.ttl_event_s", "-5.0"),
        ("outbox", "ttl_telemetry_s = 9e9", "outbox.ttl_telemetry_s", "9000000000.0"),
        ("outbox", "group_commit_ms = 2000", "outbox.group_commit_ms", "2000"),
        ("outbox", 'path = 5', "outbox.path", "5"),
        ("uplink", "inflight = 0", "uplink.inflight", "0"),
        ("uplink", 'tcp_nodelay = "maybe"', "uplink.tcp_nodelay", "'maybe'"),
        ("simulate", "speed = 0", "simulate.speed", "0"),
        ("gpio", "pins = \"bcm\"", "gpio.pins", "'bcm'"),
        ("log", 'level = "verbose"', "log.level", "'verbose'"),
    ],
)
def test_each_bad_value_gets_one_line_naming_its_key(write, section, line, key, shown):
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(device_toml(**{section: line})))
    [problem] = problems(err.value)
    assert problem.startswith(f"{key}: ")
    assert problem.endswith(f"got {shown}")


@pytest.mark.parametrize("port", ["0", "65536", '"88x3"', "8883.5", "-1"])
def test_out_of_range_broker_port_is_refused(write, port):
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(DEVICE_TOML.replace("port = 8883", f"port = {port}")))
    [problem] = problems(err.value)
    assert problem.startswith("broker.port: ")


def test_every_problem_is_listed_not_just_the_first(write):
    text = device_toml(outbox="foo = 1\nmax_bytes = 1", log='level = "loud"').replace("port = 8883", 'port = "88x3"')
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(text))
    keys = sorted(line.split(":")[0] for line in problems(err.value))
    assert keys == ["broker.port", "log.level", "outbox.foo", "outbox.max_bytes"]


def test_misspelt_key_is_an_error_not_silently_ignored(write):
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(device_toml(outbox="foo = 1")))
    assert problems(err.value) == ["outbox.foo: unknown key"]


def test_unknown_section_is_an_error(write):
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(device_toml(brokr='host = "x"')))
    assert problems(err.value) == ["brokr: unknown key"]


def test_missing_required_keys_are_named(write):
    text = DEVICE_TOML.replace('host = "broker.example.org"\n', "").replace('ca = "pki/ca.crt"\n', "")
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(text))
    assert sorted(problems(err.value)) == ["broker.ca: required key is missing", "broker.host: required key is missing"]


def test_missing_home_section_is_named(write):
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(DEVICE_TOML.replace('[home]\nid = "hem-0042"\n', "")))
    assert problems(err.value) == ["home: required key is missing"]


@pytest.mark.parametrize(
    "home_id",
    ["Bad Home!", "", "-hem", "HEM-1", "hem_1", "hem/1", "hem+1", "a" * 64, "hem-1\n", "hem-1 "],
    ids=["spaces", "empty", "leading-dash", "upper", "underscore", "slash", "plus", "too-long", "newline", "trailing-space"],
)
def test_bad_home_id_is_refused_naming_the_rule(write, home_id):
    text = DEVICE_TOML.replace('"hem-0042"', json.dumps(home_id))  # a JSON string is a TOML basic string
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(text))
    [problem] = problems(err.value)
    assert problem.startswith("home.id: expected 1-63 characters a-z, 0-9 and '-'")
    assert problem.endswith(f"got {home_id!r}")


@pytest.mark.parametrize("home_id", ["hem-0042", "0", "a" * 63, "9-lund"])
def test_good_home_ids_are_accepted(write, home_id):
    assert cfgmod.load(write(DEVICE_TOML.replace("hem-0042", home_id))).home.id == home_id


# -- paths -------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_files_directory(write, tmp_path, monkeypatch):
    etc = tmp_path / "etc" / "trygg"
    text = device_toml(keys='device = "secret/device.key"\ncenter = "/srv/trygg/center.pub"',
                       outbox='path = "../../var/lib/trygg/outbox.db"', control='socket = "run/trygg.sock"')
    path = write(text, where=etc)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)

    cfg = cfgmod.load(path)

    assert cfg.broker.ca == etc / "pki" / "ca.crt"
    assert cfg.broker.cert == etc / "pki" / "hem-0042.crt"
    assert cfg.broker.key == etc / "pki" / "hem-0042.key"
    assert cfg.keys.device == etc / "secret" / "device.key"
    assert cfg.keys.center == Path("/srv/trygg/center.pub")
    assert cfg.outbox.path == tmp_path / "var" / "lib" / "trygg" / "outbox.db"
    assert cfg.control.socket == etc / "run" / "trygg.sock"


def test_relative_path_given_as_a_relative_config_path_still_resolves(write, tmp_path, monkeypatch):
    path = write(DEVICE_TOML, where=tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    cfg = cfgmod.load(Path("conf") / "trygg.toml")
    assert cfg.broker.ca == tmp_path / "conf" / "pki" / "ca.crt"
    assert cfg.broker.ca.is_absolute()
    assert path.exists()


def test_default_file_locations_are_next_to_the_config_file_not_the_working_directory(write, tmp_path, monkeypatch):
    """A minimal config must not put the device key or outbox wherever the daemon was started (/ under systemd)."""
    etc = tmp_path / "etc"
    path = write(DEVICE_TOML, where=etc)
    monkeypatch.chdir(tmp_path)

    cfg = cfgmod.load(path)

    assert cfg.keys.device == etc / "device.key"
    assert cfg.keys.center == etc / "center.pub"
    # Next to the config, or where config/trygg.example.toml documents the default to be.
    assert cfg.outbox.path in (etc / "outbox.db", Path("/var/lib/trygg/outbox.db"))
    assert cfg.control.socket in (etc / "trygg.sock", Path("/run/trygg/trygg.sock"))


def test_center_default_file_locations_are_next_to_the_config_file(write, tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    path = write(CENTER_TOML.replace('name = "nattpatrull"', ""), "center.toml", where=etc)
    monkeypatch.chdir(tmp_path)

    cfg = center_config.load(path)

    assert cfg.center.key == etc / "center.key"
    assert cfg.center.homes_dir == etc / "homes"
    assert cfg.center.store == etc / "center.db"


# -- unreadable files -------------------------------------------------------------------


def test_toml_syntax_error_is_a_clear_config_error(write):
    path = write(DEVICE_TOML + "\n[outbox\nmax_bytes = 1\n")
    with pytest.raises(ConfigError) as err:
        cfgmod.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not valid TOML")
    assert "line 11" in message


def test_missing_config_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError) as err:
        cfgmod.load(tmp_path / "nope.toml")
    assert "not found" in str(err.value) and "--config" in str(err.value)


def test_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "trygg.toml"
    path.write_bytes(DEVICE_TOML.encode().replace(b"hem-0042", b"hem-\xe5\xe4\xf6"))
    with pytest.raises(ConfigError, match="cannot read"):
        cfgmod.load(path)


def test_config_error_is_caught_as_trygg_error_and_as_value_error(write):
    with pytest.raises(TryggError):
        cfgmod.load(write(DEVICE_TOML.replace("port = 8883", "port = 0")))
    with pytest.raises(ValueError):
        cfgmod.load(write(DEVICE_TOML.replace("port = 8883", "port = 0")))


def test_config_path_prefers_flag_then_environment_then_default(monkeypatch):
    monkeypatch.setenv(cfgmod.CONFIG_ENV, "/from/env.toml")
    assert cfgmod.config_path("/from/flag.toml") == Path("/from/flag.toml")
    assert cfgmod.config_path(None) == Path("/from/env.toml")
    monkeypatch.delenv(cfgmod.CONFIG_ENV)
    assert cfgmod.config_path(None) == cfgmod.DEFAULT_CONFIG


# -- property: nothing but ConfigError ---------------------------------------------------

BASE = Path("/etc/trygg")
VALID_DEVICE = {
    "home": {"id": "hem-0042"},
    "broker": {"host": "broker.example.org", "ca": "ca.crt", "cert": "c.crt", "key": "c.key"},
}
VALID_CENTER = {"broker": dict(VALID_DEVICE["broker"])}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.binary(max_size=10),
    st.sampled_from(["", ".", "..", "/", "88x3", "1e9", "true", "nan", "-1", "\x00", "a\x00b"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=6)


def _sections(model) -> dict[str, list[str]]:
    """Each section's known keys; free-form tables ([roles], [locks]) list example keys."""
    return {name: list(getattr(field.annotation, "model_fields", None) or ["night-staff", "front-door", "x"])
            for name, field in model.model_fields.items()}


def _section_strategy(model):
    sections = _sections(model)

    def for_section(name):
        keys = st.sampled_from(sections[name]) | st.text(max_size=8)
        return st.tuples(st.just(name), st.dictionaries(keys, values, max_size=6))

    return st.sampled_from(sorted(sections)).flatmap(for_section)


def _parse_or_config_error(data, model):
    try:
        cfgmod.parse(data, model, BASE)
    except ConfigError as exc:
        assert str(exc).startswith("config:\n")
        return exc
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_section_strategy(DeviceConfig))
def test_any_device_section_content_gives_config_error_or_a_config(section_and_values):
    name, section = section_and_values
    data = {**{k: dict(v) for k, v in VALID_DEVICE.items()}, name: section}
    _parse_or_config_error(data, DeviceConfig)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_section_strategy(CenterConfig))
def test_any_center_section_content_gives_config_error_or_a_config(section_and_values):
    name, section = section_and_values
    data = {**{k: dict(v) for k, v in VALID_CENTER.items()}, name: section}
    _parse_or_config_error(data, CenterConfig)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([(s, k) for s, keys in _sections(DeviceConfig).items() for k in keys
                        if s not in ("roles", "locks")]), values)  # cross-checked: see test_lock_rules_*
def test_a_bad_value_for_a_known_key_is_reported_under_that_key(section_key, value):
    section, key = section_key
    data = {k: dict(v) for k, v in VALID_DEVICE.items()}
    data.setdefault(section, dict(VALID_DEVICE["broker"]) if section == "broker_fallback" else {})[key] = value  # its host is required
    exc = _parse_or_config_error(data, DeviceConfig)
    if exc is not None:
        for line in problems(exc):
            assert line.startswith(f"{section}.{key}"), line


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=4))
def test_any_top_level_content_gives_config_error_or_a_config(data):
    _parse_or_config_error(data, DeviceConfig)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_file_content_gives_config_error_or_a_config(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trygg.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cfgmod.load(path)
        except ConfigError:
            pass


def test_path_with_a_nul_character_is_a_config_error_not_a_crash(write):
    """TOML allows "\\u0000" in strings; the technician must get a line, not a traceback."""
    with pytest.raises(ConfigError) as err:
        cfgmod.load(write(DEVICE_TOML.replace('ca = "pki/ca.crt"', 'ca = "pki/ca\\u0000.crt"')))
    [problem] = problems(err.value)
    assert problem.startswith("broker.ca: ")


def test_nan_and_infinite_durations_are_refused(write):
    for value in ("nan", "inf"):
        with pytest.raises(ConfigError) as err:
            cfgmod.load(write(device_toml(outbox=f"ttl_event_s = {value}")))
        [problem] = problems(err.value)
        assert problem.startswith("outbox.ttl_event_s: ")


WIRED = {"relay": {"pin": 17}, "bolt": {"pin": 27}, "door": {"pin": 22}}


def test_lock_rules_must_name_configured_roles():
    data = {**VALID_DEVICE, "roles": {"night-staff": ["unlock"]},
            "locks": {"front-door": {"unlock": {"nigth-staff": "always"}, **WIRED}}}
    with pytest.raises(ConfigError) as exc:
        cfgmod.parse(data, DeviceConfig, BASE)
    assert problems(exc.value) == ["locks.front-door.unlock names role 'nigth-staff', which is not in [roles]"]


def test_roles_list_only_known_actions_and_locks_known_rules():
    data = {**VALID_DEVICE, "roles": {"night-staff": ["unlock", "fly"]},
            "locks": {"front-door": {"unlock": {"night-staff": "sometimes"}}}}
    with pytest.raises(ConfigError) as exc:
        cfgmod.parse(data, DeviceConfig, BASE)
    lines = problems(exc.value)
    assert any(line.startswith("roles.night-staff.1:") and "'fly'" in line for line in lines), lines
    assert any(line.startswith("locks.front-door.unlock.night-staff:") for line in lines), lines
