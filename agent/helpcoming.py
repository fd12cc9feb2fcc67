"""Telling the resident that help is coming: the signed `help_coming` command's action and its config.

When night staff accept this home's alarm case, the center sends `help_coming`. A resident who
pressed the alarm button should not lie wondering whether anyone heard: every alarm button with
a light (`[buttons.NAME] led`) goes steady for `minutes`, and where a speaker is set up
(`[help_coming] speaker`) it says so in Swedish. The light goes first: it is instant and cannot
hang; the speaker may take seconds. The result says what was done; with nothing to signal with
the command is refused (fail closed: staff must not believe the resident was told), and a light
or speaker that fails makes it failed, with what did work in the reason. Policy, arguments'
names and the audit are commands.py's; their values are checked against the protocol's model
by the handler (actions.py) before anything here runs.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from base.configbase import _Section
from drivers.speaker import ALSA_DEVICE, Speaker, SpeakerError
from protocol.errors import TryggError
from protocol.messages import iso

DEFAULT_TEXT = "Hjälpen är på väg. Personal kommer till dig snart."
NOTHING = "this home has no help-coming light or speaker configured ([buttons.NAME] led, [help_coming] speaker)"


class HelpComingConfig(_Section):
    """How this home says help is coming (docs/devices.md). speaker: "none", "speech" (`text`
    through espeak-ng -v sv) or "sound_file" (a recorded WAV); both played with aplay on `device`."""

    minutes: int = Field(default=30, ge=1, le=240)  # the light stays steady this long unless the command says
    speaker: Literal["none", "speech", "sound_file"] = "none"
    text: str = Field(default=DEFAULT_TEXT, min_length=1, max_length=500)
    voice: str = Field(default="sv", pattern=r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")  # espeak-ng's language code
    sound_file: Path | None = None
    device: str | None = Field(default=None, pattern=ALSA_DEVICE)  # ALSA device; default: the system's
    output_file: Path | None = None  # tests and demos: write the WAV here instead of playing it
    timeout_s: float = Field(default=20.0, gt=0, le=120)

    @model_validator(mode="after")
    def _sound_file_given(self) -> "HelpComingConfig":
        if self.speaker == "sound_file" and self.sound_file is None:
            raise ValueError('with speaker = "sound_file" the sound_file (a WAV) must be given')
        return self


class HelpRefused(TryggError, PermissionError):
    """Nothing to signal with: the resident cannot be told, so staff must not believe they were."""


class HelpFailed(TryggError, RuntimeError):
    """A light or the speaker failed; the reason also says what did work."""


class HelpComing:
    """The action: the lights (buttons with a `led`, by name; each times itself), then the speaker."""

    def __init__(self, cfg: HelpComingConfig, lights: dict, speaker: Speaker | None = None) -> None:
        self.cfg, self.lights = cfg, lights
        if speaker is None and cfg.speaker != "none":
            speaker = Speaker(cfg.device, cfg.output_file, cfg.timeout_s)
        self.speaker = speaker if cfg.speaker != "none" else None

    @property
    def configured(self) -> bool:
        return bool(self.lights) or self.speaker is not None

    def __call__(self, case: str | None = None, minutes: int | None = None) -> dict:
        if not self.configured:
            raise HelpRefused(NOTHING)
        minutes = minutes or self.cfg.minutes
        done = {**({"case": case} if case else {}), "led": "none", "spoken": False}
        lit, failures, until = [], [], []
        for name, button in self.lights.items():
            try:
                until.append(button.help_coming(minutes * 60.0))
                lit.append(name)
            except Exception as exc:  # LightError, or gpiozero's own: each is reported, none stops the rest
                failures.append(f"the light at {name} did not go on: {exc}")
        if lit:
            done.update(led="on", lights=lit, minutes=minutes, until=iso(max(until)))
        if self.speaker is not None:
            try:
                self._speak()
                done["spoken"] = True
            except SpeakerError as exc:
                failures.append(f"the spoken message failed: {exc}")
        if failures:
            worked = [f"lit until {done['until']}: {', '.join(lit)}"] if lit else []
            worked += ["the message was spoken"] if done["spoken"] else []
            raise HelpFailed("; ".join(failures + worked))
        return done

    def _speak(self) -> None:
        if self.cfg.speaker == "sound_file":
            self.speaker.play(self.cfg.sound_file)
        else:
            self.speaker.say(self.cfg.text, self.cfg.voice)
