"""The home's speaker: speaks a short text or plays a recorded WAV, through ALSA.

Speech is espeak-ng's, written to a WAV first and then played with aplay (alsa-utils, from the
OS packages), so one ALSA `device` serves speech and recordings alike. Each program runs as a
subprocess with an argument list, never a shell, and the text goes in on stdin, so no text can
become an option; one timeout covers the whole message, so a hung sound card costs that message,
never the caller's thread. With `output_file` (tests, a demo without a sound card) the WAV is
written there instead of played. Knows nothing of commands or of why it speaks; never imports
MQTT, crypto or SQLite.
"""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from protocol.errors import TryggError

ALSA_DEVICE = r"^[A-Za-z0-9_][A-Za-z0-9_:,=.-]{0,63}$"  # default, plughw:1,0, hw:CARD=Device,DEV=0


class SpeakerError(TryggError, RuntimeError):
    """The message was not spoken or played; the reason says why and what to do."""


class Speaker:
    """One speaker (an ALSA device), or a file sink standing in for it."""

    def __init__(self, device: str | None = None, output_file: Path | None = None, timeout_s: float = 20.0,
                 run=subprocess.run) -> None:
        self.device, self.output_file, self.timeout_s, self._run = device, output_file, timeout_s, run

    def say(self, text: str, voice: str = "sv") -> None:
        """Speak `text` in `voice` (espeak-ng's language code)."""
        deadline = time.monotonic() + self.timeout_s
        with tempfile.TemporaryDirectory(prefix="trygg-say-") as tmp:
            wav = self.output_file or Path(tmp) / "message.wav"
            self._call([_tool("espeak-ng"), "-v", voice, "-w", str(wav), "--stdin"], deadline, text.encode())
            if self.output_file is None:
                self._play(wav, deadline)

    def play(self, sound_file: Path) -> None:
        """Play a recorded WAV."""
        if not sound_file.is_file():
            raise SpeakerError(f"sound file {sound_file}: no such file")
        if self.output_file is not None:
            try:
                shutil.copyfile(sound_file, self.output_file)
            except OSError as exc:
                raise SpeakerError(f"could not write {self.output_file}: {exc.strerror or exc}") from None
            return
        self._play(sound_file, time.monotonic() + self.timeout_s)

    def _play(self, wav: Path, deadline: float) -> None:
        device = ["-D", self.device] if self.device else []
        self._call([_tool("aplay"), "-q", *device, str(wav)], deadline)

    def _call(self, argv: list[str], deadline: float, stdin: bytes = b"") -> None:
        name = Path(argv[0]).name
        left = deadline - time.monotonic()
        if left <= 0:
            raise SpeakerError(f"{name}: no time left of the speaker's {self.timeout_s:g} s")
        try:
            done = self._run(argv, input=stdin, capture_output=True, timeout=left, check=False)
        except subprocess.TimeoutExpired:
            raise SpeakerError(f"{name}: not done within {self.timeout_s:g} s (stopped); check the sound card") from None
        except OSError as exc:
            raise SpeakerError(f"{name}: could not run it: {exc.strerror or exc}") from None
        if done.returncode != 0:
            why = (done.stderr.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1][:200]
            raise SpeakerError(f"{name} failed (exit {done.returncode}): {why}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "espeak-ng" if name == "espeak-ng" else "alsa-utils"
        raise SpeakerError(f"{name} is not installed (apt install {package})")
    return path
