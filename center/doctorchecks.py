"""`trygg center doctor`'s checks of what lies on disk and in the store: keys, homes, certificates,
the web console's files, the store's schema step, the receivers' own reports.

Each check returns verdicts (base/doctor.py) and never raises for what it finds; it only reads:
it never creates, migrates, fixes or deletes anything (the store is opened, never migrated).
The broker check, which talks to the network, is in doctor.py.
"""

import datetime
import ipaddress
import json
from pathlib import Path

from base.doctor import Verdict, failed, passed, warned
from base.errors import KeyFileError
from base.keys import check_database, check_private, load_private, load_public
from protocol.topics import HOME_ID_RE

from . import subscheck
from .config import CenterConfig
from .db import StoreUnavailable, connect, parse_url
from .migrations import STEPS

WARN_DAYS = 30
RECEIVER_FRESH_S = 10.0  # as the watch view (view.py): a receiver not heard this long is not receiving
UNIT = "trygg-center"


# -- keys --------------------------------------------------------------------------------------
def keys(cfg: CenterConfig) -> list[Verdict]:
    """The center key (and the next one during a rotation, and retired ones), staff keys: present,
    readable only by the service, parseable."""
    c = cfg.center
    out = []
    found = []
    for what, path, needed in [("center key", c.key, True), ("next center key", c.next_key, False)]:
        if not path.exists():
            if needed:
                out.append(failed("keys", f"{what} {path} is missing",
                                  "restore it from the backup (or make a new center with trygg center init)"))
            continue
        try:
            load_private(path)
            found.append(what)
        except KeyFileError as exc:
            out.append(failed("keys", f"{what}: {exc}", _key_fix(exc, path)))
    private = sorted(c.retired_keys.glob("*.key")) if c.retired_keys.is_dir() else []
    staff_private = sorted(c.staff_dir.glob("*.key")) if c.staff_dir.is_dir() else []
    for path in private + staff_private:
        try:
            check_private(path, "private key")
        except KeyFileError as exc:
            out.append(failed("keys", str(exc), f"chmod 600 {path}"))
    staff = sorted(c.staff_dir.glob("*.pub")) if c.staff_dir.is_dir() else []
    bad_staff = []
    for path in staff:
        try:
            load_public(path)
        except KeyFileError as exc:
            bad_staff.append(str(exc))
    if bad_staff:
        out.append(failed("keys", f"staff key(s) that do not load: {'; '.join(bad_staff)}",
                          f"replace them from the staff member's device or remove them from {c.staff_dir}"))
    if not any(v.status == "fail" for v in out):
        detail = f"{' and '.join(found)} present, 0600; {len(staff)} staff key(s), {len(private)} retired key(s)"
        if not staff:
            out.append(warned("keys", detail, "enroll staff keys: trygg center staff-key NAME (or copy a staff "
                                              f"member's .pub into {c.staff_dir})"))
        else:
            out.append(passed("keys", detail))
    return out


def _key_fix(exc: Exception, path: Path) -> str:
    return f"chmod 600 {path}" if "readable by others" in str(exc) else f"restore {path} from the backup"


# -- homes -------------------------------------------------------------------------------------
def homes(cfg: CenterConfig) -> Verdict:
    """Enrolled homes: every <home>.pub that loads and names its own home; anything else is stray."""
    folder = cfg.center.homes_dir
    if not folder.is_dir():
        return failed("homes", f"homes directory {folder} does not exist",
                      f"mkdir -m 700 {folder}, then enroll homes: trygg center add-homes FOLDER")
    enrolled, stray = 0, []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".pub" or not path.is_file():
            stray.append(f"{path.name} (not a <home>.pub)")
            continue
        try:
            public = load_public(path)
        except KeyFileError as exc:
            stray.append(f"{path.name} ({exc})")
            continue
        if public.name != path.stem or not HOME_ID_RE.fullmatch(path.stem):
            stray.append(f"{path.name} (holds the key of {public.name!r}; a home's key is <home>.pub)")
        else:
            enrolled += 1
    if stray:
        return warned("homes", f"{enrolled} home(s) enrolled; stray file(s) in {folder}, not read: "
                               f"{'; '.join(stray[:5])}{' ...' if len(stray) > 5 else ''}",
                      f"move them out of {folder} (re-enroll a home with trygg center add-home)")
    if not enrolled:
        return warned("homes", f"no home enrolled in {folder}", "enroll homes: trygg center add-homes FOLDER")
    return passed("homes", f"{enrolled} home(s) enrolled")


# -- certificates ------------------------------------------------------------------------------
def certificate(name: str, cert_path: Path, key_path: Path, ca_path: Path, usage: str, now: datetime.datetime,
                host: str | None = None) -> list[Verdict]:
    """A certificate and its key: readable, safe, matching; valid now and for how long; the right
    extended key usage (and SAN for a server); chaining to the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        check_private(key_path, "TLS private key")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cas = x509.load_pem_x509_certificates(ca_path.read_bytes())
    except KeyFileError as exc:
        return [failed(name, str(exc), f"chmod 600 {key_path}")]
    except (OSError, ValueError, TypeError) as exc:
        return [failed(name, f"cannot read {cert_path}, {key_path} or {ca_path}: {exc}",
                       "check the paths in the config and that each file is PEM")]
    out = []
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        out.append(failed(name, f"{key_path} is not the key of {cert_path}", "configure the key issued with it"))
    left = (cert.not_valid_after_utc - now).days
    if cert.not_valid_before_utc > now:
        out.append(failed(name, f"{cert_path} is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                          "check this machine's clock (timedatectl) or the certificate's dates"))
    elif left < 0:
        out.append(failed(name, f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                          "renew it (docs/operations.md, certificates) and restart the service"))
    elif left < WARN_DAYS:
        out.append(warned(name, f"{cert_path} expires in {left} day(s), {cert.not_valid_after_utc:%Y-%m-%d}",
                          "renew it now (docs/operations.md, certificates)"))
    wanted = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}[usage]
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if wanted not in eku:
            out.append(failed(name, f"{cert_path} lacks the {usage} extended key usage ({wanted._name})",
                              f"reissue it with extendedKeyUsage = {usage}Auth"))
    except x509.ExtensionNotFound:
        pass  # no EKU: any use allowed
    if host is not None and not _names(cert, host):
        out.append(failed(name, f"{cert_path} does not name {host} in its subjectAltName",
                          f"reissue it with subjectAltName = DNS:{host}"))
    issuers = [ca for ca in cas if ca.subject == cert.issuer]
    if not any(_issued_by(cert, ca) for ca in issuers):
        out.append(failed(name, f"{cert_path} does not chain to the CA in {ca_path}",
                          "configure the CA that issued it, or reissue the certificate from this CA"))
    for ca in issuers:
        if (ca.not_valid_after_utc - now).days < WARN_DAYS:
            out.append(warned(name, f"the CA {ca_path} expires {ca.not_valid_after_utc:%Y-%m-%d}",
                              "plan the CA's renewal now: every certificate it issued stops with it"))
    if not out:
        cn = [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        out.append(passed(name, f"{cert_path} (CN {cn[0] if cn else '-'}): {left} days left, {usage} use, "
                                f"chains to {ca_path.name}"))
    return out


def _issued_by(cert, ca) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:  # noqa: BLE001 - InvalidSignature, a key type that differs: not this CA
        return False


def _names(cert, host: str) -> bool:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        return any(name == host or (name.startswith("*.") and host.split(".", 1)[-1] == name[2:])
                   for name in san.get_values_for_type(x509.DNSName))


def web(cfg: CenterConfig, now: datetime.datetime) -> list[Verdict]:
    """The web console's TLS files when it has them; without, it may listen on loopback only."""
    w = cfg.web
    host = w.listen.rsplit(":", 1)[0].strip("[]")
    loopback = host == "localhost" or _is_loopback(host)
    if w.cert is None and w.key is None:
        if loopback:
            return [passed("web console", f"plain HTTP on {w.listen} (loopback only: the demo)")]
        return [failed("web console", f"[web] listen = {w.listen} without cert and key: the console refuses to "
                                      "serve plain HTTP beyond loopback", "set web.cert and web.key")]
    if w.cert is None or w.key is None:
        return [failed("web console", "only one of web.cert and web.key is set", "set both, or neither (loopback)")]
    missing = [f"web.{k} = {p}" for k, p in (("cert", w.cert), ("key", w.key)) if not p.is_file()]
    if missing:
        return [failed("web console", f"missing: {', '.join(missing)}", "put the file there or correct the path")]
    out = _web_cert(w, now)
    if w.secret.exists():
        try:
            check_private(w.secret, "session secret")
        except KeyFileError as exc:
            out.append(failed("web console", str(exc), f"chmod 600 {w.secret}"))
    return out


def _web_cert(w, now) -> list[Verdict]:
    """The console's certificate: its own chain is the browser's business (a public CA); here its
    key, dates, server use and, with web.host, the name."""
    return [v if v.status != "fail" or "does not chain" not in v.detail else
            passed(v.check, "certificate issued by a CA other than the broker's (the browser checks it)")
            for v in certificate("web console", w.cert, w.key, w.cert, "server", now, w.host)]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the store -----------------------------------------------------------------------------------
def store(cfg: CenterConfig):
    """(verdict, an open Database or None): reachable, safe, at the latest migration step."""
    url = cfg.store_url
    kind, where = parse_url(url)
    latest = STEPS[-1][0]
    if kind == "sqlite":
        path = Path(where)
        if not path.exists():
            return failed("store", f"no store at {path}",
                          f"start the receiving service once (systemctl start {UNIT}): it creates and migrates it"), None
        try:
            check_database(path, "the center's store")
        except KeyFileError as exc:
            return failed("store", str(exc), f"chmod 600 {path}*"), None
    try:
        db = connect(url)
        rows = db.query("SELECT MAX(version) FROM schema_version")
    except StoreUnavailable as exc:
        return failed("store", str(exc), "check [store] url, that PostgreSQL runs, and ~/.pgpass"), None
    except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg: no schema_version table, not a database
        return failed("store", f"{_where(kind, where)} is not a Trygg store ({type(exc).__name__}: {exc})",
                      "point [center] store / [store] url at the center's store"), None
    version = rows[0][0] if rows else None
    if version is None or version < latest:
        return failed("store", f"{_where(kind, where)} is at schema step {version or 0} of {latest}",
                      f"restart the receiving service (systemctl restart {UNIT}): it migrates at start"), db
    if version > latest:
        return failed("store", f"{_where(kind, where)} is at step {version}, newer than this Trygg's {latest}",
                      "upgrade trygg on this machine to the version the receivers run"), db
    return passed("store", f"{_where(kind, where)} reachable, schema at step {latest} (latest)"), db


def _where(kind: str, where: str) -> str:
    return f"SQLite {where}" if kind == "sqlite" else f"PostgreSQL {where.rsplit('@', 1)[-1]}"


# -- the receivers, as they report themselves in the store ----------------------------------------
def receivers(db, now: float) -> list[Verdict]:
    """Every receiving service that ever ran on this store: heard within RECEIVER_FRESH_S,
    connected, and what it found wrong at the broker (receiving nothing is a fail)."""
    rows = db.query("SELECT name, state, since, beat, broker FROM receivers ORDER BY name")
    if not rows:
        return [failed("receivers", "no receiving service has run against this store",
                       f"start it: systemctl enable --now {UNIT}")]
    out = []
    for name, state, _since, beat, broker in rows:
        check, age = f"receiver {name}", now - beat
        report = json.loads(broker) if broker else {}
        lines = [(lane, w) for lane, seen in sorted(report.get("lanes", {}).items()) for w in seen.get("warnings", [])]
        nothing = [f"{lane} lane: {subscheck.without_fix(w)}" for lane, w in lines if subscheck.RECEIVES_NOTHING in w]
        others = [f"{lane} lane: {w}" for lane, w in lines if subscheck.RECEIVES_NOTHING not in w]
        if age > RECEIVER_FRESH_S:
            out.append(failed(check, f"not heard for {age:.0f} s (last state {state})",
                              f"start it (systemctl start {UNIT}); journalctl -u {UNIT} says why it stopped"))
        elif nothing:
            out.append(failed(check, "; ".join(nothing), subscheck.ACL_FIX))
        elif state != "connected":
            out.append(failed(check, f"running but {state} from the broker",
                              f"journalctl -u {UNIT} names the broker's answer; see the broker check above"))
        elif others:
            out.append(warned(check, "; ".join(others), "see docs/operations.md, Broker sizing"))
        else:
            out.append(passed(check, f"connected, heard {age:.0f} s ago"))
    return out
