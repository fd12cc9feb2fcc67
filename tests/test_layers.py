"""The walls between the layers (docs/architecture.md), read from every module's imports.

protocol <- base <- the device (agent/, drivers/) and the receiving side (center/): the protocol
imports nothing of the others, the base nothing of either side, the two sides nothing of each
other, and drivers nothing of transport, crypto or storage. A failure names file:line.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("protocol", "base", "agent", "drivers", "center")
MAY_IMPORT = {  # of the project's own packages
    "protocol": {"protocol"},
    "base": {"protocol", "base"},
    "agent": {"protocol", "base", "agent", "drivers"},
    "drivers": {"protocol", "drivers"},
    "center": {"protocol", "base", "center"},
}
NEVER = {"drivers": {"paho", "sqlite3", "sqlite_utils", "cryptography", "socket"}}


def imports(path: Path):
    """(line, top-level module) for every import in the file, relative ones resolved."""
    package = path.relative_to(ROOT).parts[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, package if node.level else (node.module or "").split(".")[0]


def crossings() -> list[str]:
    found = []
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imports(path):
                where = f"{path.relative_to(ROOT)}:{line}"
                if module in PROJECT and module not in MAY_IMPORT[package]:
                    found.append(f"{where}: {package}/ imports {module}/")
                if module in NEVER.get(package, ()):
                    found.append(f"{where}: a driver imports {module}")
    return found


def test_no_import_crosses_a_wall():
    assert crossings() == []


def test_the_check_itself_sees_a_crossing(tmp_path, monkeypatch):
    """A test that cannot fail is worse than none: plant a crossing and see it named."""
    planted = ROOT / "drivers" / "_planted_crossing.py"
    planted.write_text("import sqlite3\nfrom center import cli\n")
    try:
        found = crossings()
    finally:
        planted.unlink()
    assert "drivers/_planted_crossing.py:1: a driver imports sqlite3" in found
    assert "drivers/_planted_crossing.py:2: drivers/ imports center/" in found


def _modules_loaded_by(*args: str) -> set[str]:
    code = ("import sys\nfrom agent.cli import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
            "print('@@modules', ' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    return set(out.rpartition("@@modules")[2].split())


def test_the_devices_cli_loads_nothing_of_the_receiving_side():
    for args in (["--help"], ["status", "--config", "/nonexistent/trygg.toml"]):
        loaded = _modules_loaded_by(*args)
        assert "agent.cli" in loaded
        assert not {m for m in loaded if m == "center" or m.startswith("center.")}, args


def test_trygg_help_loads_no_config_models_and_no_command_groups():
    """Start-up: `trygg --help` names every group without importing one (bench: whole-process times)."""
    loaded = _modules_loaded_by("--help")
    assert not {"pydantic", "agent.trust_cli", "agent.config", "cryptography"} & loaded


def test_trygg_center_is_found_when_it_is_used():
    assert "center.cli" in _modules_loaded_by("center", "--help")


def test_every_error_a_person_can_see_derives_from_the_one_root():
    import importlib
    import inspect

    from protocol.errors import TryggError

    strays = []
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py":
                continue  # running it is what importing it does
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            module = importlib.import_module(name)
            for cls_name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == name and issubclass(cls, BaseException) and not cls_name.startswith("_"):
                    builtin = any(b.__module__ == "builtins" and b not in (Exception, BaseException, object)
                                  for b in cls.__mro__)
                    if cls is not TryggError and not (issubclass(cls, TryggError) and builtin):
                        strays.append(f"{name}.{cls_name}")
    assert strays == [], "errors outside the root, or with no builtin beside it"
