"""A small SD card of a test's own, and filling it from outside Trygg as a runaway log would.

The card is a tmpfs (mounting needs root; CI runs as root), unmounted when the test ends.
"""

import errno
import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def tmpfs(tmp_path):
    """Factory: tmpfs("2m") mounts a card of that size under tmp_path; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a tmpfs and need root (CI runs as root)")
    mounted: list[Path] = []

    def _mount(size: str = "2m") -> Path:
        path = tmp_path / f"card{len(mounted)}"
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield _mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(card: Path) -> Path:
    """Fill the card until the file system says no."""
    filler = card / "filler.log"
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
