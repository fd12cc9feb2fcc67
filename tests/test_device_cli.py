"""The technician's device commands through the CLI: `trygg test DEVICE`, `trygg refill`, and the
errors a bad scenario or wiring gives before anything runs."""

import json

from tests.support.lab import edit_toml, trygg, wait_for

def test_device_test_shows_the_pins_and_inputs_and_switches_an_output_only_when_confirmed(lab):
    home = lab.home("hem-test-1")
    declined = trygg("test", "front-door", "--seconds", "0.2", "--config", home.config, input="n\n")
    assert "front-door (lock): relay GPIO17, bolt GPIO27, door GPIO22" in declined.stdout
    assert "bolt: thrown   door: closed" in declined.stdout
    assert "relay on" not in declined.stdout
    confirmed = trygg("test", "front-door", "--seconds", "0.2", "--config", home.config, input="y\n")
    out = confirmed.stdout
    # On mock pins the bolt follows the relay, as a working lock does: the technician sees it move.
    assert out.index("relay on") < out.index("bolt: retracted") < out.index("relay off") < out.rindex("bolt: thrown"), out


def test_device_test_names_the_devices_there_are_when_given_an_unknown_one(lab):
    home = lab.home("hem-test-2")
    result = trygg("test", "kitchen-mat", "--seconds", "0.1", "--config", home.config, check=False)
    assert result.returncode == 1
    assert "no device named 'kitchen-mat'" in result.stderr and "front-door" in result.stderr


def test_device_test_refuses_board_pins_while_the_daemon_runs(lab):
    home = lab.home("hem-test-3")
    home.start()
    try:
        wait_for(home.responds, 20, "daemon up")
        edit_toml(home.config, {"gpio": {"pins": "board"}})
        result = trygg("test", "front-door", "--seconds", "0.1", "--config", home.config, check=False)
        assert result.returncode == 1 and "the daemon is running and holds the pins" in result.stderr
    finally:
        edit_toml(home.config, {"gpio": {"pins": "mock"}})
        home.stop()


def test_refill_through_the_cli_resets_the_count_and_is_audited(lab):
    home = lab.home("hem-refill")
    edit_toml(home.config, {"dispensers": {"kitchen": {
        "doses": [{"time": "08:00"}, {"time": "20:00"}], "fill_count": 14,
        "dispense": {"pin": 18}, "reminder": {"pin": 19}, "taken": {"pin": 20}, "empty": {"pin": 21}, "jam": {"pin": 4}}}})
    home.start()
    try:
        wait_for(home.responds, 20, "daemon up")
        out = trygg("refill", "kitchen", "--count", "10", "--config", home.config).stdout
        assert out.strip() == "kitchen: 10 doses, 5 days"
        entries = [e for e in home.audit() if e["kind"] == "dispenser_refilled"]
        assert entries and entries[-1]["detail"]["doses_left"] == 10
        wrong = trygg("refill", "bathroom", "--config", home.config, check=False)
        assert wrong.returncode == 1 and "no dispenser named 'bathroom'" in wrong.stderr
        assert json.loads(trygg("status", "--json", "--config", home.config).stdout)["drivers"]["kitchen"]["kind"] == "dispenser"
    finally:
        home.stop()


def test_a_bad_scenario_is_refused_with_file_and_line_before_the_daemon_starts(lab, tmp_path):
    home = lab.home("hem-scenario")
    scenario = tmp_path / "night.txt"
    scenario.write_text("start 22:00\n22:10 front-door door ajar\n")
    result = trygg("run", "--simulate", "--scenario", scenario, "--config", home.config, check=False, timeout=60)
    assert result.returncode == 1
    assert f"{scenario}:2: front-door.door is closed or open, not 'ajar'" in result.stderr


def test_a_pin_wired_twice_is_a_config_error_naming_both_uses(lab):
    home = lab.home("hem-pins")
    edit_toml(home.config, {"buttons": {"wrist": {"input": {"pin": 27}}}})
    result = trygg("config", "validate", home.config, check=False)
    assert result.returncode == 1
    assert "buttons.wrist.input: GPIO27 is already used by locks.front-door.bolt" in result.stderr
