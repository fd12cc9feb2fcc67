"""Disk space for the outbox: how much is free, and a reserve kept for alarms.

An SD card fills up from outside Trygg (logs, a worn card going read-only in parts), and SQLite
needs room to write even a delete (the WAL). So the outbox keeps a reserve file of real,
allocated blocks beside its database: when a write fails for lack of space the reserve is
given back to the file system and the write tried again, which is room enough to drop
telemetry and store the alarm. The reserve is made again once there is room for it. Owns that
one file; never touches the database.
"""

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding directory."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


class Reserve:
    """A file of `size` allocated bytes, given back when the disk is full."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = Path(path)
        self.size = size

    @property
    def held(self) -> int:
        """Bytes the reserve holds right now (0 after a release, until it is made again)."""
        try:
            return self.path.stat().st_blocks * 512 if self.size else 0
        except FileNotFoundError:
            return 0

    def ensure(self, keep_free: int) -> bool:
        """Make the reserve whole when that leaves at least keep_free bytes free. True when whole."""
        if self.size <= 0:
            return True
        have = self.held
        if have >= self.size:
            return True
        if free_bytes(self.path.parent) - (self.size - have) < keep_free:
            return False
        try:
            self._write_zeros()
        except OSError as exc:
            log.warning("could not make the outbox's alarm reserve %s: %s", self.path, exc)
            self.release()
            return False
        return True

    def release(self) -> int:
        """Give the reserve back to the file system; returns the bytes freed."""
        freed = self.held
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return 0
        return freed

    def _write_zeros(self) -> None:
        """Real blocks, written and synced: a sparse file or a bare fallocate on a file system that
        only pretends (tmpfs does allocate, some FUSE layers do not) would free nothing later."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, self.size)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise
            zeros = bytes(_CHUNK)
            for offset in range(0, self.size, _CHUNK):
                os.pwrite(fd, zeros[: min(_CHUNK, self.size - offset)], offset)
            os.fsync(fd)
        finally:
            os.close(fd)
