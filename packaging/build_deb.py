"""Build Trygg's Debian packages for Debian 12 / Raspberry Pi OS bookworm with dpkg-deb.

Three packages from one source tree (why: packaging/README.md):
  trygg-runtime  (this architecture) the Python environment: a venv at /usr/lib/trygg built here
                 from wheels, /usr/bin/trygg, and the helpers under /usr/libexec/trygg
  trygg          (all) the home device: the `trygg` user, /etc/trygg, /var/lib/trygg, its unit, the update timer
  trygg-center   (all) the receiving service and the web console: the `trygg-center` user, its dirs, both units
and, with --keyring, the municipality's own trygg-archive-keyring (its release key at the path devices trust).

The venv is built once (--venv-cache DIR keeps it between builds, so a test builds two versions from one
venv) with Debian's own /usr/bin/python3, because that is the interpreter the packages run on. It must
never touch the machine's /usr/lib/trygg: it is built under a staging directory and its scripts' #! lines
are rewritten to the installed path.

Usage: python3 packaging/build_deb.py --out DIR [--version V] [--venv-cache DIR] [--fast]
       python3 packaging/build_deb.py --out DIR --version V --keyring release.gpg
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "packaging"
PREFIX = "/usr/lib/trygg"  # the venv, as installed
LIBEXEC = "/usr/libexec/trygg"
PYTHON = "/usr/bin/python3"  # Debian's interpreter: the one the target runs
MAINTAINER = "Trygg maintainers <trygg@example.org>"


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(*cmd, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def quiet(*cmd) -> None:
    """pip, whose output matters only when it fails."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd[:4]))} ... failed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")


def build_venv(cache: Path) -> Path:
    """A venv at cache/root/usr/lib/trygg with the project and every dependency from wheels.

    Built without the system's site-packages so pip installs every dependency into it (a Debian
    package already on the build host must not satisfy one); switched to include them afterwards
    (packaging/README.md: python3-systemd, and on a Pi python3-lgpio and python3-picamera2)."""
    venv = cache / "root" / PREFIX.lstrip("/")
    stamp = cache / ".built"
    if stamp.exists() and stamp.read_text() == _source_stamp():
        return venv
    shutil.rmtree(cache / "root", ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run(PYTHON, "-m", "venv", venv)
    pip = [venv / "bin" / "python3", "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # Non-editable, with the console's vendored browser modules (make deb builds them first).
    if not (ROOT / "center/web/static/vendor/hpke.js").exists():
        sys.exit("center/web/static/vendor is not built: run `make deb` (it builds the web console's modules first)")
    quiet(*pip, "install", "-q", "--no-compile", "--no-cache-dir", ROOT)
    quiet(*pip, "check")
    quiet(*pip, "uninstall", "-q", "-y", "pip", "setuptools")  # dpkg owns this tree: nobody pip-installs into it
    cfg = venv / "pyvenv.cfg"
    staged = str(venv)
    text = cfg.read_text().replace("include-system-site-packages = false", "include-system-site-packages = true")
    cfg.write_text(text.replace(staged, PREFIX))
    for script in (venv / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            text = script.read_bytes()
            if staged.encode() in text:
                script.write_bytes(text.replace(staged.encode(), PREFIX.encode()))
    for junk in ("activate", "activate.csh", "activate.fish", "Activate.ps1"):
        (venv / "bin" / junk).unlink(missing_ok=True)
    # Byte-code compiled here, named by the installed path, so the trygg user (who cannot write to
    # /usr) starts fast; dpkg then owns and removes the .pyc files with the rest.
    run(PYTHON, "-m", "compileall", "-q", "-j", "0", "-s", cache / "root", "-p", "/", venv / "lib")
    stamp.write_text(_source_stamp())
    return venv


def _source_stamp() -> str:
    """A hash of everything that goes into the venv: a changed source rebuilds it, another
    engineer's commit elsewhere in the tree does not."""
    digest = hashlib.sha256()
    for top in ("protocol", "base", "agent", "drivers", "center", "pyproject.toml"):
        paths = [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts and "node_modules" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def control(name: str, version: str, architecture: str, depends: str, description: str, extra: str = "") -> str:
    return (f"Package: {name}\nVersion: {version}\nArchitecture: {architecture}\nMaintainer: {MAINTAINER}\n"
            f"Section: misc\nPriority: optional\nDepends: {depends}\n{extra}"
            f"Homepage: https://example.org/trygg\nDescription: {description}\n")


def install(src: Path, dst: Path, mode: int = 0o644) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def unit(src: Path, dst: Path) -> None:
    """A unit from systemd/, installed. Their ExecStart names /usr/bin/trygg (the package's entry point);
    an older unit that still says /usr/local/bin/trygg is pointed at it here."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(src.read_text().replace("/usr/local/bin/trygg", "/usr/bin/trygg"))
    os.chmod(dst, 0o644)


def scripts(tree: Path, package: str) -> None:
    for name in ("preinst", "postinst", "prerm", "postrm", "conffiles"):
        src = HERE / package / name
        if src.exists():
            install(src, tree / "DEBIAN" / name, 0o644 if name == "conffiles" else 0o755)


def docs(tree: Path, package: str) -> None:
    doc = tree / "usr/share/doc" / package
    install(HERE / "copyright", doc / "copyright")
    install(ROOT / "README.md", doc / "README.md")


def deb(tree: Path, out: Path, fast: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    # Tests want speed (gzip -1); a release wants size (xz, what Debian's archive uses).
    comp = ["-Zgzip", "-z1"] if fast else ["-Zxz", "-z6"]
    result = subprocess.run(["dpkg-deb", "--root-owner-group", *comp, "--build", str(tree), str(out)],
                            check=True, capture_output=True, text=True)
    return Path(result.stdout.split("'")[-2])


def build(out: Path, version: str, cache: Path, fast: bool) -> list[Path]:
    venv = build_venv(cache)
    work = cache / "trees"
    shutil.rmtree(work, ignore_errors=True)
    built = []

    rt = work / "trygg-runtime"
    shutil.copytree(venv, rt / PREFIX.lstrip("/"), symlinks=True)
    (rt / "usr/bin").mkdir(parents=True)
    os.symlink(f"{PREFIX}/bin/trygg", rt / "usr/bin/trygg")
    for helper in ("restart-when-idle", "update"):
        install(HERE / "libexec" / f"{helper}.py", rt / LIBEXEC.lstrip("/") / helper, 0o755)
    docs(rt, "trygg-runtime")
    size = sum(f.stat().st_size for f in rt.rglob("*") if f.is_file() and not f.is_symlink()) // 1024
    (rt / "DEBIAN").mkdir()
    (rt / "DEBIAN/control").write_text(control(
        "trygg-runtime", version, arch(),
        "python3 (>= 3.11), python3 (<< 3.12), python3-systemd",
        "Trygg home-care safety software: its Python environment\n"
        " Trygg's code and the exact Python libraries it was tested with, in /usr/lib/trygg,\n"
        " and the trygg command. Install trygg (a home) or trygg-center (the night staff's side).",
        f"Installed-Size: {size}\n"))
    built.append(deb(rt, out, fast))

    dev = work / "trygg"
    unit(ROOT / "systemd/trygg.service", dev / "lib/systemd/system/trygg.service")
    for name in ("trygg-update.service", "trygg-update.timer"):
        install(HERE / "systemd" / name, dev / "lib/systemd/system" / name)
    install(HERE / "trygg/trygg.sources.example", dev / "usr/share/doc/trygg/examples/trygg.sources")
    docs(dev, "trygg")
    scripts(dev, "trygg")
    (dev / "DEBIAN/control").write_text(control(
        "trygg", version, "all", f"trygg-runtime (= {version}), adduser, apt",
        "Trygg home-care safety daemon for a resident's home\n"
        " Gets every alarm from the home's safety devices to the night staff, sealed end to end.\n"
        " Not started until configured: run `trygg init`, then `systemctl enable --now trygg`.",
        # Raspberry Pi OS's pin factory (a Pi 5 has no other) and camera stack; plain Debian has neither.
        "Recommends: python3-lgpio\nSuggests: python3-picamera2\n"))
    built.append(deb(dev, out, fast))

    ctr = work / "trygg-center"
    for name in ("trygg-center.service", "trygg-web.service"):
        unit(ROOT / "systemd" / name, ctr / "lib/systemd/system" / name)
    docs(ctr, "trygg-center")
    scripts(ctr, "trygg-center")
    (ctr / "DEBIAN/control").write_text(control(
        "trygg-center", version, "all",
        f"trygg-runtime (= {version}), adduser, libpq5, libpango-1.0-0, libpangoft2-1.0-0",
        "Trygg receiving service and web console for the night staff\n"
        " Receives the homes' alarms, records and acknowledges them, opens alarm cases, and serves\n"
        " the night staff's web console. Not started until configured (trygg center init).",
        "Suggests: postgresql\n"))
    built.append(deb(ctr, out, fast))
    return built


def keyring_package(keyring: Path, version: str, out: Path, fast: bool = True) -> Path:
    """trygg-archive-keyring: the municipality's release key(s) at the path devices' sources name
    (Signed-By). Shipping it as a package signed by the current key is how a new key reaches the
    devices before the repository switches to it (docs/operations.md, key rotation)."""
    tree = out / "trygg-archive-keyring.tree"
    shutil.rmtree(tree, ignore_errors=True)
    install(keyring, tree / "usr/share/keyrings/trygg-archive-keyring.gpg")
    install(HERE / "copyright", tree / "usr/share/doc/trygg-archive-keyring/copyright")
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN/control").write_text(control(
        "trygg-archive-keyring", version, "all", "apt",
        "The municipality's signing key(s) for its Trygg repository\n"
        " apt accepts the Trygg repository only when signed by a key in\n"
        " /usr/share/keyrings/trygg-archive-keyring.gpg (Signed-By in trygg.sources)."))
    try:
        return deb(tree, out, fast)
    finally:
        shutil.rmtree(tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Where the .deb files go.")
    parser.add_argument("--version", default=f"{project_version()}-1",
                        help="Debian version (default: pyproject's, -1).")
    parser.add_argument("--venv-cache", type=Path, default=ROOT / "build/deb-venv",
                        help="Where the venv is built and kept.")
    parser.add_argument("--fast", action="store_true", help="gzip -1 instead of xz (tests).")
    parser.add_argument("--keyring", type=Path, help="Build only trygg-archive-keyring from this keyring "
                        "(gpg --export of the release key(s)).")
    args = parser.parse_args()
    if args.keyring:
        print(keyring_package(args.keyring, args.version, args.out, args.fast))
        return
    for path in build(args.out, args.version, args.venv_cache.resolve(), args.fast):
        print(path)


if __name__ == "__main__":
    main()
