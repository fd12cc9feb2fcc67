"""A signed apt repository on local disk, as a municipality runs one, and apt pointed only at it.

Real tools throughout: gpg makes a throwaway release key (GNUPGHOME in a temp dir, never the
machine's), reprepro builds and signs the repository, apt-get installs from it through a deb822
sources file with Signed-By. apt gets its own lists and cache directories and only this sources
file, so the machine's own sources and package lists are never touched.
"""

import os
import subprocess
from pathlib import Path

CODENAME = "bookworm"


def sh(*cmd, env: dict | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout, cwd="/",
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class ReleaseKey:
    """An ed25519 signing key in its own GNUPGHOME; `keyring` is what devices get for Signed-By."""

    def __init__(self, directory: Path, name: str) -> None:
        self.home = directory / "gnupg"
        self.home.mkdir(parents=True, mode=0o700)
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        sh("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
           f"{name} <release@example.org>", "ed25519", "sign", "1d", env=self.env)
        colons = sh("gpg", "--batch", "--with-colons", "--list-secret-keys", env=self.env).stdout
        self.fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
        self.keyring = directory / f"{name.replace(' ', '-')}.gpg"
        self.keyring.write_bytes(subprocess.run(["gpg", "--batch", "--export", self.fingerprint], env=self.env,
                                                capture_output=True, check=True).stdout)
        os.chmod(self.keyring, 0o644)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True, check=False)


class Repository:
    """reprepro's layout under `directory`, signed by `key`."""

    def __init__(self, directory: Path, key: ReleaseKey) -> None:
        self.dir, self.key = directory, key
        (directory / "conf").mkdir(parents=True)
        # The file operations.md shows a municipality (Origin/Label are what apt pins and reports).
        (directory / "conf/distributions").write_text(
            f"Origin: Trygg\nLabel: Trygg\nCodename: {CODENAME}\nArchitectures: amd64 arm64\nComponents: main\n"
            f"Description: Trygg test repository\nSignWith: {key.fingerprint}\n")
        (directory / "conf/options").write_text("verbose\n")
        os.chmod(directory, 0o755)

    def publish(self, *debs: Path) -> None:
        sh("reprepro", "-b", self.dir, "includedeb", CODENAME, *debs, env=self.key.env)

    def pool_file(self, package: str) -> Path:
        return next(self.dir.glob(f"pool/main/*/{package}/{package}_*.deb"))

    @property
    def url(self) -> str:
        return f"file://{self.dir}"


class Apt:
    """apt-get with one sources file (Signed-By: `keyring`) and private lists and cache."""

    def __init__(self, directory: Path, repo_url: str, keyring: Path) -> None:
        self.dir = directory
        for sub in ("lists/partial", "cache/archives/partial"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self.sources = directory / "trygg.sources"
        self.url = repo_url
        self.trust(keyring)
        # One file, so the package's own updater (APT_CONFIG) sees exactly what these calls see.
        self.config = directory / "apt.conf"
        self.config.write_text(
            f'Dir::Etc::sourcelist "{self.sources}";\nDir::Etc::sourceparts "-";\n'
            f'Dir::State::Lists "{directory / "lists"}";\nDir::Cache "{directory / "cache"}";\n'
            'APT::Sandbox::User "root";\nDPkg::Lock::Timeout "120";\nAPT::Get::List-Cleanup "false";\n')
        self.env = {**os.environ, "APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive"}

    def trust(self, keyring: Path) -> None:
        """Signed-By: the only key(s) apt accepts for this repository."""
        self.sources.write_text(f"Types: deb\nURIs: {self.url}\nSuites: {CODENAME}\nComponents: main\n"
                                f"Signed-By: {keyring}\n")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("apt-get", "-q", *args, env=self.env, check=check)


def installed_version(package: str) -> str | None:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", package],
                          capture_output=True, text=True, check=False)
    status, _, version = proc.stdout.partition(" ")
    return version if proc.returncode == 0 and status == "installed" else None
