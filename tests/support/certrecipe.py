"""The certificate recipe of docs/operations.md, read from the document and run as written.

It owns reading the section "Certificates for the broker, the homes and the receivers", finding
its marked shell blocks (`<!-- recipe: NAME -->` on the line before a ```sh fence) and running
one block with `sh -eu` in a directory given to it. The only changes it makes to a block are the
placeholders the section names (PLACEHOLDERS, plus a home id where a test asks for another home)
and, for the install step, the `/etc/` prefix (a test never writes to the real /etc). It never
talks to the network and never touches anything outside the directory it is given.
"""

import os
import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
HEADING = "## Certificates for the broker, the homes and the receivers"
HOME_ID = "hem-0042"
# The words the section tells a municipality to replace, and what the lab broker needs instead:
# it listens on 127.0.0.1 only and is reached by the name "localhost".
PLACEHOLDERS = {"mqtt.kommun.example": "localhost", "192.0.2.10": "127.0.0.1"}
CA_PASS = "lab-only passphrase, not a secret"
BLOCK = re.compile(r"^<!-- recipe: ([a-z0-9-]+) -->\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


class RecipeError(AssertionError):
    """The document and the recipe's use of it disagree, or a step failed as written."""


def section(text: str | None = None) -> str:
    """The recipe's section of operations.md (up to the next `## ` heading)."""
    text = DOC.read_text() if text is None else text
    start = text.find(HEADING + "\n")
    if start < 0:
        raise RecipeError(f"{DOC}: no section {HEADING!r}")
    end = text.find("\n## ", start + len(HEADING))
    return text[start:] if end < 0 else text[start:end]


def blocks(text: str | None = None) -> dict[str, str]:
    """Every marked block of the section by name; a name used twice is an error."""
    found: dict[str, str] = {}
    for match in BLOCK.finditer(section(text)):
        name, code = match.groups()
        if name in found:
            raise RecipeError(f"{DOC}: two blocks marked 'recipe: {name}'")
        found[name] = code
    return found


def step(name: str, home: str = HOME_ID, drop_line: str | None = None, etc: Path | None = None) -> str:
    """The block `name` with the documented placeholders replaced.

    home: the home id to use instead of hem-0042. drop_line: leave out the one line starting
    with this text (to show what the step is for). etc: where `/etc/` is put instead.
    """
    found = blocks()
    if name not in found:
        raise RecipeError(f"{DOC}: the certificate section has no block marked 'recipe: {name}'")
    code = found[name]
    if drop_line is not None:
        lines = code.splitlines(keepends=True)
        kept = [line for line in lines if not line.lstrip().startswith(drop_line)]
        if len(lines) - len(kept) != 1:
            raise RecipeError(f"block {name!r}: expected one line starting with {drop_line!r}")
        code = "".join(kept)
    for word, lab in PLACEHOLDERS.items():
        code = code.replace(word, lab)
    code = code.replace(HOME_ID, home)
    if etc is not None:
        code = code.replace("/etc/", f"{etc}/")
    return code


def run(name: str, workdir: Path, **options) -> str:
    """Run one block in workdir as the section says (sh, CA_PASS set); returns its stdout."""
    code = step(name, **options)
    env = {**os.environ, "CA_PASS": CA_PASS, "LC_ALL": "C"}
    done = subprocess.run(["sh", "-eu", "-c", code], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise RecipeError(f"recipe step {name!r} failed with exit {done.returncode}:\n{code}\n"
                          f"--- stderr ---\n{done.stderr}")
    return done.stdout


def issue_all(workdir: Path, homes: tuple[str, ...] = (HOME_ID,)) -> Path:
    """The recipe from the CA to the check step, every file in one directory (as if carried
    between the machines): the CA, the broker, each home given, the receiver."""
    workdir.mkdir(parents=True, exist_ok=True)
    run("ca", workdir)
    run("broker-key", workdir)
    run("broker-sign", workdir)
    for home in homes:
        run("home-key", workdir, home=home)
        run("home-sign", workdir, home=home)
    run("receiver-key", workdir)
    run("receiver-sign", workdir)
    run("check", workdir)
    return workdir
