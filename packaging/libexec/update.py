#!/usr/lib/trygg/bin/python3
"""Apply Trygg's updates from the municipality's signed repository (trygg-update.service, daily).

apt verifies the repository's signature against the one key its sources file names (Signed-By)
and every package's hash; a package that fails either is refused and nothing changes. Only
Trygg's own installed packages are upgraded here: the rest of the machine follows the
municipality's own policy (unattended-upgrades or its management tool). The daemon's restart is
the package's postinst's business (restart-when-idle), whoever upgrades.
"""

import os
import subprocess
import sys

PACKAGES = ("trygg-archive-keyring", "trygg-runtime", "trygg", "trygg-center")  # the keyring first: a rotation
APT = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Options::=--force-confold"]


def installed() -> list[str]:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *PACKAGES],
                         capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.endswith(" installed")]


def main() -> int:
    packages = installed()
    if not packages:
        print("no Trygg package installed", file=sys.stderr)
        return 0
    if subprocess.run([*APT, "update"], check=False).returncode != 0:
        print("apt-get update failed (unreachable or wrongly signed repository): nothing upgraded", file=sys.stderr)
        return 1
    return subprocess.run([*APT, "install", "-y", "--only-upgrade", *packages],
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
