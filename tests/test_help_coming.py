"""Help is coming: once night staff accept the alarm, the resident sees the button's light go
steady and hears, in Swedish, that someone is on the way.

Real parts: the button driver on MockFactory pins with a FakeClock (tests/support/homekit.py),
espeak-ng writing a real WAV through the speaker's file sink, and, end to end, a running home
given `trygg center help-coming` through the real broker.
"""

import wave
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.actions import DEFAULT_ROLES, build_actions
from agent.commands import ActionFailed, ActionRefused
from agent.config import DeviceConfig
from agent.helpcoming import NOTHING, HelpComing, HelpComingConfig
from base.errors import ConfigError
from drivers.speaker import Speaker
from protocol.actions import command_args
from protocol.ids import new_id
from protocol.messages import CommandMessage, iso
from tests.support.homekit import BROKER, WALL, make_home  # noqa: F401 - fixture

LED = 7  # a free pin in the simulated home
ANNA = SimpleNamespace(name="anna", role="night-staff")


def command(**args) -> CommandMessage:
    return CommandMessage(id=new_id(), home="h1", action="help_coming", args=args, issued=WALL,
                          expires=WALL + timedelta(minutes=5))


def act(help_coming, **args) -> dict:
    """The device's `help_coming` action, as commands.py calls it once policy allowed it."""
    actions = build_actions({}, status=dict, switch_center_key=str, help_coming=help_coming)
    return actions["help_coming"](command(**args), ANNA)


def lit_home(make_home, **help_coming):
    home = make_home(overrides={"buttons": {"wrist": {"led": {"pin": LED}}}, "help_coming": help_coming})
    wrist = home.open("wrist")
    return home, wrist, HelpComing(home.cfg.help_coming, {"wrist": wrist})


def light(home) -> bool:
    return home.factory.pin(LED).state


def assert_wav(path: Path, min_seconds: float) -> None:
    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds >= min_seconds, f"{path}: only {seconds:.2f} s of sound"


# -- the light ----------------------------------------------------------------------------------


def test_the_button_light_is_steady_for_the_minutes_asked_and_then_goes_off(make_home):
    home, wrist, help_coming = lit_home(make_home)
    assert not light(home)
    result = act(help_coming, case="019bbfaa-cb00-7c3d-9e11-d00000000001", minutes=2)
    assert result == {"case": "019bbfaa-cb00-7c3d-9e11-d00000000001", "led": "on", "lights": ["wrist"],
                      "minutes": 2, "until": iso(WALL + timedelta(minutes=2)), "spoken": False}
    assert light(home) and wrist.health()["light"] == "on"
    home.run(119.0)
    assert light(home), "the light went off before the two minutes were over"
    home.run(1.5)
    assert not light(home) and wrist.health()["light"] == "off"


def test_without_minutes_the_light_stays_on_for_the_homes_configured_time(make_home):
    home, _, help_coming = lit_home(make_home, minutes=5)
    assert act(help_coming)["until"] == iso(WALL + timedelta(minutes=5))
    home.run(5 * 60 - 1)
    assert light(home)
    home.run(2)
    assert not light(home)


def test_a_second_help_coming_starts_the_time_again(make_home):
    home, _, help_coming = lit_home(make_home)
    act(help_coming, minutes=1)
    home.run(50)
    act(help_coming, minutes=1)  # a second member accepted too: a minute from now
    home.run(50)
    assert light(home)
    home.run(11)
    assert not light(home)


def test_the_light_comes_back_on_when_the_button_driver_restarts_while_help_is_coming(make_home):
    home, wrist, help_coming = lit_home(make_home)
    act(help_coming, minutes=10)
    home.close(wrist)  # a crash closes the devices; the driver's thread opens them again
    home.open("wrist")
    assert light(home)
    home.run(10 * 60 + 1)
    assert not light(home)


def test_the_light_does_not_hold_back_the_alarm_button(make_home):
    home, _, help_coming = lit_home(make_home)
    act(help_coming, minutes=30)
    home.set("wrist", "button", "pressed")
    assert home.events.alarms() == ["help"]
    assert light(home)


def test_a_button_whose_driver_is_not_running_is_a_failed_command_saying_so(make_home):
    home, wrist, help_coming = lit_home(make_home)
    home.close(wrist)
    with pytest.raises(ActionFailed, match="the light at wrist did not go on: wrist: the button's driver is not running"):
        act(help_coming)


def test_a_simulated_home_lights_its_help_coming_light_on_mock_pins():
    from agent.devices import HomeDevices
    from tests.support.fakes import FakeClock
    from tests.support.homekit import home_config

    cfg = home_config({"simulate": {"enabled": True}, "buttons": {"wrist": {"led": {"pin": LED}}}})
    devices = HomeDevices(cfg, emit=None, clock=FakeClock(WALL), trust=None, inject=lambda event: (None, True))
    wrist = devices.of_kind("button")["wrist"]
    wrist.open()
    try:
        act(HelpComing(cfg.help_coming, {"wrist": wrist}), minutes=1)
        assert devices.factory.pin(LED).state and wrist.health()["light"] == "on"
    finally:
        wrist.close()


# -- the speaker --------------------------------------------------------------------------------


def test_the_spoken_message_is_a_real_swedish_wav_from_espeak_ng(tmp_path):
    said = tmp_path / "said.wav"
    help_coming = HelpComing(HelpComingConfig(speaker="speech", output_file=said), {})
    assert act(help_coming, case="case-1") == {"case": "case-1", "led": "none", "spoken": True}
    assert_wav(said, min_seconds=1.5)  # "Hjälpen är på väg. Personal kommer till dig snart."


def test_a_recorded_sound_file_is_played_as_it_is(tmp_path):
    recorded = tmp_path / "hjalpen-kommer.wav"
    Speaker(output_file=recorded).say("Hjälpen kommer.")
    said = tmp_path / "said.wav"
    help_coming = HelpComing(HelpComingConfig(speaker="sound_file", sound_file=recorded, output_file=said), {})
    assert act(help_coming)["spoken"] is True
    assert said.read_bytes() == recorded.read_bytes()


def test_light_and_speech_together(make_home, tmp_path):
    home, _, help_coming = lit_home(make_home, speaker="speech", output_file=str(tmp_path / "said.wav"))
    result = act(help_coming, minutes=1)
    assert result["led"] == "on" and result["spoken"] is True
    assert light(home)
    assert_wav(tmp_path / "said.wav", min_seconds=1.5)


def test_a_speaker_that_fails_is_a_failed_command_that_still_says_the_light_is_on(make_home, tmp_path):
    home, _, help_coming = lit_home(make_home, speaker="speech", voice="zz", output_file=str(tmp_path / "said.wav"))
    with pytest.raises(ActionFailed) as failed:
        act(help_coming, minutes=3)
    reason = str(failed.value)
    assert "the spoken message failed: espeak-ng failed (exit 1)" in reason and "voice does not exist" in reason
    assert f"lit until {iso(WALL + timedelta(minutes=3))}: wrist" in reason
    assert light(home)


def test_a_missing_sound_file_is_a_failed_command_naming_the_file(tmp_path):
    help_coming = HelpComing(HelpComingConfig(speaker="sound_file", sound_file=tmp_path / "gone.wav",
                                              output_file=tmp_path / "said.wav"), {})
    with pytest.raises(ActionFailed, match=r"the spoken message failed: sound file .*gone.wav: no such file"):
        act(help_coming)


def test_a_speaker_that_hangs_is_stopped_at_its_timeout(tmp_path):
    import subprocess

    def hang(argv, **kw):
        return subprocess.run(["sleep", "5"], **kw)  # a sound card that never answers

    speaker = Speaker(output_file=tmp_path / "said.wav", timeout_s=0.2, run=hang)
    help_coming = HelpComing(HelpComingConfig(speaker="speech"), {}, speaker=speaker)
    with pytest.raises(ActionFailed, match=r"espeak-ng: not done within 0.2 s \(stopped\)"):
        act(help_coming)


# -- refused --------------------------------------------------------------------------------------


def test_a_home_with_no_light_and_no_speaker_refuses_and_says_why():
    with pytest.raises(ActionRefused, match="this home has no help-coming light or speaker configured"):
        act(HelpComing(HelpComingConfig(), {}))
    with pytest.raises(ActionRefused) as refused:
        act(None)
    assert str(refused.value) == NOTHING


@pytest.mark.parametrize("args, reason", [
    ({"case": "a b"}, "help_coming: case: String should match pattern"),
    ({"case": "x" * 65}, "help_coming: case: String should match pattern"),
    ({"case": "abc\n"}, "help_coming: case: String should match pattern"),
    ({"case": 42}, "help_coming: case: Input should be a valid string"),
    ({"minutes": 0}, "help_coming: minutes: Input should be greater than or equal to 1"),
    ({"minutes": 241}, "help_coming: minutes: Input should be less than or equal to 240"),
    ({"minutes": True}, "help_coming: minutes: Input should be a valid integer"),
    ({"minutes": "30"}, "help_coming: minutes: Input should be a valid integer"),
])
def test_bad_arguments_are_refused_before_anything_lights(make_home, args, reason):
    home, _, help_coming = lit_home(make_home)
    with pytest.raises(ActionRefused, match=reason):
        act(help_coming, **args)
    assert not light(home)
    with pytest.raises(ValueError, match=reason):  # the center builds its arguments with the same model
        command_args("help_coming", args)


def test_night_staff_and_nurses_may_say_help_is_coming_technicians_may_not():
    assert "help_coming" in DEFAULT_ROLES["night-staff"] and "help_coming" in DEFAULT_ROLES["nurse"]
    assert "help_coming" not in DEFAULT_ROLES["technician"]


# -- config ---------------------------------------------------------------------------------------


def device(**sections) -> dict:
    return {"home": {"id": "h1"}, "broker": dict(BROKER), **sections}


def test_the_button_light_shares_no_pin_with_another_device():
    data = device(buttons={"wrist": {"input": {"pin": 16}, "led": {"pin": 16}}})
    with pytest.raises(ValueError, match=r"buttons.wrist.led: GPIO16 is already used by buttons.wrist.input"):
        DeviceConfig.model_validate(data)


def test_a_sound_file_speaker_needs_its_sound_file(tmp_path):
    with pytest.raises(ValueError, match='with speaker = "sound_file" the sound_file'):
        HelpComingConfig(speaker="sound_file")
    with pytest.raises(ValueError, match="device"):
        HelpComingConfig(speaker="speech", device="-D evil")


def test_help_coming_paths_are_relative_to_the_config_file(tmp_path):
    from agent import config as cfgmod

    path = tmp_path / "trygg.toml"
    path.write_text('[home]\nid = "h1"\n[broker]\nhost = "b"\nca = "ca"\ncert = "c"\nkey = "k"\n'
                    '[help_coming]\nspeaker = "sound_file"\nsound_file = "hjalp.wav"\noutput_file = "said.wav"\n')
    cfg = cfgmod.load(path)
    assert cfg.help_coming.sound_file == tmp_path / "hjalp.wav" and cfg.help_coming.output_file == tmp_path / "said.wav"
    path.write_text(path.read_text().replace("minutes", "") + "minutes = 0\n")
    with pytest.raises(ConfigError, match="help_coming.minutes"):
        cfgmod.load(path)


# -- end to end: `trygg center help-coming` through the real broker ------------------------------


def test_night_staff_tell_a_running_home_help_is_coming_and_it_is_audited(lab, tmp_path):
    from tests.test_commands import EXIT_REFUSED
    from tests.test_commands import command as send

    said = tmp_path / "said.wav"
    home = lab.home("hem-help", buttons={"wall": {"input": {"pin": 16}, "led": {"pin": LED}}},
                    help_coming={"speaker": "speech", "output_file": str(said)}).start()
    lab.enroll(home, "anna", "night-staff")
    lab.enroll(home, "tove", "technician")
    case = new_id()
    code, result, err = send(lab, "help-coming", home, "anna", "--case", case, "--minutes", "20", timeout=30)
    assert code == 0, err
    assert result["outcome"] == "done" and result["case"] == case and result["led"] == "on"
    assert result["lights"] == ["wall"] and result["minutes"] == 20 and result["spoken"] is True
    assert result["args"] == {"case": case, "minutes": 20}
    assert_wav(said, min_seconds=1.5)
    assert home.status()["drivers"]["wall"]["light"] == "on"
    entry = [e for e in home.audit() if e["kind"] == "command"][-1]
    assert entry["detail"]["action"] == "help_coming" and entry["detail"]["outcome"] == "done"
    assert entry["detail"]["command"] == result["command"]
    code, result, _ = send(lab, "help-coming", home, "tove")
    assert code == EXIT_REFUSED and "role technician may not give the command 'help_coming'" in result["reason"]


def test_a_home_with_nothing_to_signal_with_refuses_help_coming_through_the_cli(lab):
    from tests.test_commands import EXIT_REFUSED
    from tests.test_commands import command as send

    home = lab.home("hem-quiet").start()
    lab.enroll(home, "anna", "night-staff")
    code, result, _ = send(lab, "help-coming", home, "anna")
    assert code == EXIT_REFUSED and result["outcome"] == "refused"
    assert result["reason"] == NOTHING
