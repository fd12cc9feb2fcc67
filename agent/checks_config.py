"""Doctor: the config (every error in one pass), the files it names, and the keys.

One verdict per problem, so the report lists them all; the config's own problems come from
base/configcheck.py and the files' from base/filecheck.py, the same checks as
`trygg config validate`.
"""

from pathlib import Path

from base.configcheck import Checked, check_config
from base.doctor import Verdict, failed, passed
from base.errors import TryggError
from base.filecheck import ServiceUser, check_files, named_paths
from base.keys import load_private, load_public
from protocol.envelope import signer_kid

NO_FILE_FIX = "put the file there, or correct the path in the config"


def check_config_file(path: Path, model, user: ServiceUser) -> tuple[Checked, list[Verdict]]:
    checked = check_config(path, lambda data: model, files=False)
    fix = f"edit {path} (every key is explained in config/trygg.example.toml)"
    verdicts = [failed("config", error, fix) for error in checked.errors]
    if checked.model is None:
        return checked, verdicts
    if not verdicts:
        verdicts.append(passed("config", f"{path} valid"))
    base = path.parent.resolve()
    problems = check_files(checked.model, checked.data, checked.config, base, user)
    for problem in problems:
        detail, _, fix = problem.partition("; ")
        verdicts.append(failed("files", detail, (fix.removeprefix("run ") if fix else NO_FILE_FIX)))
    if not problems:
        count = len(named_paths(checked.model, checked.data, checked.config, base))
        verdicts.append(passed("files", f"{count} named files checked: present where needed, readable by {user.name}, private keys safe"))
    return checked, verdicts


def check_keys(cfg) -> tuple[object | None, list[Verdict]]:
    """(the device identity or None, verdicts): the device's own key and the center's public key."""
    verdicts, device = [], None
    try:
        device = load_private(cfg.keys.device)
        verdicts.append(passed("device key", f"{cfg.keys.device} ({signer_kid(device.sign.public_key()).hex()})"))
    except TryggError as exc:
        verdicts.append(failed("device key", str(exc), "trygg init writes it; restore it from the install, or "
                               "re-provision and give the new device.pub to the care center"))
    try:
        center = load_public(cfg.keys.center)
        detail = f"{cfg.keys.center} ({signer_kid(center.sign).hex()})"
        if cfg.keys.center_next.exists():
            load_public(cfg.keys.center_next)
            detail += f"; next key staged: {cfg.keys.center_next}"
        verdicts.append(passed("center key", detail))
    except TryggError as exc:
        verdicts.append(failed("center key", str(exc), "copy the care center's center.pub (trygg center init "
                               "wrote it) to keys.center"))
    return device, verdicts
