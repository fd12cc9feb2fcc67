"""The day nurse's morning report, on generated months of homes with known planted changes.

One real SQLite store (tests/support/reportyear.py: real envelopes signed by each home's key
and sealed to the center key, cases sealed by the center's Sealer) over six weeks that cross
the change from summer time (2026-10-25). Checked: a flag for each planted change and none for
noise (both rates printed; each noise home has one odd night that must not flag), the report's
numbers against the generator's truth, the sealed day digests (same report, far fewer envelopes
opened, a late event noticed), every format through the real CLI, the PDF rendered to a picture
under build/screenshots/ for the lead to look at.
"""

import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from center import config as cfgmod
from center.reports import baseline
from center.reports.morning import Nights, Settings, report
from tests.support.homekit import make_home  # noqa: F401 - fixture (the real lock driver)
from tests.support.lab import trygg
from tests.support.reportyear import generate, make_center

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
MORNING = date(2026, 11, 3)  # six weeks back from here cross the end of summer time (2026-10-25)
HOMES = 100
BASELINE_WHATS = {"bed_exits", "activity", "doors", "doses", "quiet"}


@pytest.fixture(scope="module")
def year(tmp_path_factory, pki):
    root = tmp_path_factory.mktemp("morning")
    truth = generate(make_center(root, pki), homes=HOMES, days=42, morning=MORNING, seed=18, planted_share=0.5)
    cfg = cfgmod.load(truth.config)
    started = time.monotonic()
    data = report(cfg, MORNING, None, Settings(outcomes=dict(cfg.cases.outcomes)), time.time())
    cold = time.monotonic() - started
    print(f"\ngenerated {truth.events} events for {HOMES} homes x 42 days in {truth.seconds:.1f} s; "
          f"report (cold, {data['opened']}) {cold:.1f} s")
    return truth, cfg, data


def _settings(cfg) -> Settings:
    return Settings(outcomes=dict(cfg.cases.outcomes))


def test_flags_find_planted_changes_and_not_noise(year):
    truth, _cfg, data = year
    by_home = {h["home"]: h for h in data["homes"]}
    planted = [t for t in truth.homes.values() if t.planted]
    noise = [t for t in truth.homes.values() if not t.planted]
    assert len(planted) >= 30 and len(noise) >= 30
    found = [t for t in planted if t.planted in {f["what"] for f in by_home[t.home]["flags"]}]
    false = [t for t in noise if BASELINE_WHATS & {f["what"] for f in by_home[t.home]["flags"]}]
    detection, false_rate = len(found) / len(planted), len(false) / len(noise)
    per_kind = {k: f"{sum(1 for t in found if t.planted == k)}/{sum(1 for t in planted if t.planted == k)}"
                for k in sorted({t.planted for t in planted})}
    print(f"\ndetection {detection:.0%} of {len(planted)} planted homes {per_kind}; "
          f"false flags {false_rate:.0%} of {len(noise)} noise-only homes")
    assert detection >= 0.9, [(t.home, t.planted, by_home[t.home]["flags"]) for t in planted if t not in found]
    assert false_rate <= 0.05, [(t.home, by_home[t.home]["flags"]) for t in false]
    # a planted home is flagged for what was planted, not for something else as well
    assert all(BASELINE_WHATS & {f["what"] for f in by_home[t.home]["flags"]} == {t.planted} for t in found)
    # homes that need attention come first
    flagged = [bool(h["flags"]) for h in data["homes"]]
    assert flagged == sorted(flagged, reverse=True)


def test_one_odd_night_is_counted_but_not_flagged(year):
    """Each noise home had one wild night this week (7 more bed exits): counted, yet not a flag
    (a rule on single nights, or on the largest, would flag every one of them)."""
    truth, _cfg, data = year
    by_home = {h["home"]: h for h in data["homes"]}
    noise = [t for t in truth.homes.values() if not t.planted]
    flagged = 0
    for t in noise:
        exits = [n["bed_exits"] for n in by_home[t.home]["nights"]]
        week, base = exits[-7:], exits[-35:-7]
        assert max(week) >= 7  # the odd night is there, in the week
        flagged += "bed_exits" in {f["what"] for f in by_home[t.home]["flags"]}
        assert max(week) >= max(base) + 3 or max(week) >= 7
    print(f"\nnoise homes flagged for bed exits: {flagged}/{len(noise)}")
    assert flagged <= 0.05 * len(noise)


def test_numbers_match_the_generators_truth(year):
    truth, cfg, data = year
    assert [h["home"] for h in data["homes"]] != sorted(truth.homes)  # ordered by attention, not by id
    for h in data["homes"]:
        t = truth.homes[h["home"]]
        assert h["name"] == t.name
        for night in h["nights"]:
            want = t.nights[night["night"]]
            assert (night["bed_exits"], night["doors"]) == (want["bed_exits"], want["doors"]), (h["home"], night)
            assert night["activity"] == want.get("activity"), (h["home"], night)
        for day in h["doses"]["days"]:
            assert {k: day[k] for k in ("taken", "late", "missed")} == t.doses[day["date"]], (h["home"], day)
        assert len(h["doses"]["days"]) == 14 and h["doses"]["days"][-1]["date"] == "2026-11-02"
        got = [(c["kinds"], c["to_accept_s"], c["to_on_site_s"], c["to_close_s"], c["outcome"]) for c in h["cases"]]
        want = [([c["kind"]], c["to_accept_s"], c["to_on_site_s"], c["to_close_s"], c["outcome"]) for c in sorted(t.cases, key=lambda c: c["opened"])]
        assert got == want, h["home"]
        assert all(c["outcome_text"] == cfg.cases.outcomes[c["outcome"]] for c in h["cases"])
        assert sum(p["seconds"] for p in h["offline"]) == pytest.approx(t.offline_s, abs=1)
    assert sum(len(h["cases"]) for h in data["homes"]) > 20


def test_day_digests_give_the_same_report_and_notice_a_late_event(year):
    truth, cfg, data = year
    started = time.monotonic()
    again = report(cfg, MORNING, None, _settings(cfg), time.time())
    warm = time.monotonic() - started
    print(f"\nreport again (warm: {again['opened']}) {warm:.2f} s; cold opened {data['opened']}")
    assert again["homes"] == data["homes"]
    assert again["opened"]["envelopes"] * 20 < data["opened"]["envelopes"]
    assert again["opened"]["digests"] <= HOMES * 8  # a handful per home: weeks, and days of the last one
    # sealed at rest: no kind, no body, no name in the digests' bytes
    from center.store import EventStore

    store = EventStore(cfg.store_url)
    try:
        blobs = b"".join(bytes(r[0]) for r in store.db.query("SELECT sealed FROM report_days"))
        assert blobs and b"bed_exit" not in blobs and b"per_hour" not in blobs
        assert all(name.encode() not in blobs for name in {t.name for t in truth.homes.values() if t.name})
    finally:
        store.close()


def test_a_late_event_reopens_its_day(tmp_path, pki):
    """A bed exit of an old night that arrives late (an outage) changes that day's count: counted."""
    from base.keys import load_public
    from center.store import EventStore, Received
    from protocol import envelope, topics
    from protocol.ids import new_id
    from protocol.messages import EventMessage, encode

    truth = generate(make_center(tmp_path, pki), homes=2, days=40, morning=MORNING, seed=5)
    cfg = cfgmod.load(truth.config)
    home = "hem-r001"
    first = {n["night"]: n for n in report(cfg, MORNING, home, _settings(cfg), time.time())["homes"][0]["nights"]}
    night = MORNING - timedelta(days=20)
    at = datetime.combine(night, datetime.min.time().replace(hour=23, minute=30), Nights(Settings()).zone)
    device = truth.devices[home]
    topic = topics.up(home, "alarm")
    message = EventMessage(id=new_id(), home=home, cls="alarm", kind="bed_exit", time=at, clock_synced=True, body={})
    sealed = envelope.seal(encode(message), topic, device.sign, load_public(cfg.center.key.with_suffix(".pub")).kem)
    store = EventStore(cfg.store_url)
    try:
        store.record([Received(message.id, home, "alarm", topic, sealed, at.timestamp() + 3600)])
    finally:
        store.close()
    second = report(cfg, MORNING, home, _settings(cfg), time.time())
    nights = {n["night"]: n for n in second["homes"][0]["nights"]}
    want = truth.homes[home].nights[night.isoformat()]["bed_exits"]
    assert first[night.isoformat()]["bed_exits"] == want
    assert nights[night.isoformat()]["bed_exits"] == want + 1
    assert {k: v for k, v in nights.items() if k != night.isoformat()} == \
        {k: v for k, v in first.items() if k != night.isoformat()}


def test_every_format_through_the_cli(year, tmp_path):
    truth, _cfg, data = year
    args = ["center", "report", "morning", "--date", MORNING.isoformat(), "--config", str(truth.config)]
    flagged = next(h for h in data["homes"] if h["flags"] and h["cases"] and h["name"])
    as_json = json.loads(trygg(*args, "--format", "json", "--home", flagged["home"]).stdout)
    assert as_json["homes"] == [flagged]
    html = trygg(*args, "--format", "html", "--home", flagged["home"]).stdout
    assert "Morgonrapport tis 3 november 2026" in html and flagged["name"] in html
    assert all(f["text"] in html for f in flagged["flags"]) and "<svg" in html and "<script" not in html
    out = tmp_path / "morgon.pdf"
    trygg(*args, "--format", "pdf", "--home", flagged["home"], "--out", str(out))
    assert out.stat().st_mode & 0o777 == 0o600
    pages = _shots(out.read_bytes(), "morning-one-home")
    assert pages == 1


def test_many_homes_print_attention_first_over_several_pages(year):
    _truth, _cfg, data = year
    from center.reportcli import render

    part = {**data, "homes": data["homes"][:10] + data["homes"][-20:],  # ten flagged cards, twenty calm lines
            "needs_attention": 10}
    assert all(h["flags"] for h in part["homes"][:10]) and not any(h["flags"] for h in part["homes"][10:])
    pages = _shots(render(part, "pdf"), "morning-many-homes")
    assert 3 <= pages <= 6


def _shots(pdf: bytes, name: str) -> int:
    """Render each page to build/screenshots/NAME-N.png; a page must not be blank. The page count."""
    import pypdfium2

    SHOTS.mkdir(parents=True, exist_ok=True)
    document = pypdfium2.PdfDocument(pdf)
    try:
        for i, page in enumerate(document):
            picture = page.render(scale=1.5).to_pil()
            picture.save(SHOTS / f"{name}-{i + 1}.png")
            dark = sum(picture.convert("L").histogram()[:128])
            assert dark > 2000, f"page {i + 1} of {name} is blank"
        return len(document)
    finally:
        document.close()


def test_bad_input_is_one_line(year):
    truth, _cfg, _data = year
    base = ["center", "report", "morning", "--config", str(truth.config)]
    for extra, says in ((["--date", "2026-02-30"], "--date"), (["--home", "hem-none"], "hem-none"),
                        (["--night", "22-07"], "--night"), (["--zone", "Europe/Nowhere"], "--zone")):
        done = trygg(*base, *extra, check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


def test_a_night_that_changes_the_clock_is_ten_hours():
    nights = Nights(Settings())
    start, end = nights.bounds(date(2026, 10, 24))  # the clocks go back at 03:00 on the 25th
    assert end - start == 10 * 3600
    start, end = nights.bounds(date(2026, 3, 28))  # and forward on the 29th
    assert end - start == 8 * 3600
    assert nights.of(start) == date(2026, 3, 28) and nights.of(end) is None and nights.of(end - 1) == date(2026, 3, 28)


def test_the_baseline_ignores_one_odd_night():
    base = [1, 2, 1, 0, 2, 1, 1] * 4
    rule = baseline.RULES[0]
    assert baseline.judge(rule, [1, 2, 1, 9, 1, 2, 1], base) is None  # one wild night in the week
    assert baseline.judge(rule, [5, 6, 4, 6, 7, 5, 6], base[:-1] + [30]) is not None  # an odd night in the baseline
    flag = baseline.judge(rule, [5, 6, 4, 6, 7, 5, 6], base)
    assert flag["text"] == "uppstigningar ur sängen: 6 per natt den här veckan mot 1 de fyra veckorna innan"
    assert baseline.judge(rule, [5, 6, 4, 6], base[:10]) is None  # too little history to judge



def test_flag_lines_read_as_swedish_is_written():
    doors, exits = baseline.RULES[2], baseline.RULES[0]
    assert baseline.judge(doors, [1] * 7, [0] * 28)["text"] == \
        "dörren öppnad på natten: 1 gång per natt den här veckan mot 0 de fyra veckorna innan"
    assert "2 gånger per natt" in baseline.judge(doors, [2] * 7, [0] * 28)["text"]
    flag = baseline.judge(exits, [5, 5, 5, 5, 6, 6, 6], [1, 2] * 14)
    assert flag["text"].startswith("uppstigningar ur sängen: 5 per natt den här veckan mot 1,5 ") and flag["baseline"] == 1.5


def test_the_console_serves_the_report_to_signed_in_staff_only(year):
    """GET /api/report/morning: 401 without a session; JSON equal to the CLI's data; a PDF; one line for bad input."""
    from starlette.testclient import TestClient

    from base.keys import Identity, write_public
    from center import keyring
    from center.atrest import Sealer, center_keys
    from center.residents import RESIDENT_CONTEXT, Residents
    from center.service import case_desk
    from center.store import EventStore
    from center.web.accesslog import ACCESS_CONTEXT, AccessLog
    from center.web.app import Console, make_app
    from center.web.passkeys import PASSKEY_CONTEXT, PasskeyStore
    from center.web.session import Sessions
    from center.web.signin import SignInDesk
    from tests.test_web_api import ORIGIN, Clock, sign_in

    _truth, cfg, data = year
    store = EventStore(cfg.store_url)
    keys = center_keys(cfg)
    clock = Clock(time.time())
    nurse = Identity.generate("karin")
    cfg.center.staff_dir.mkdir(mode=0o700, exist_ok=True)
    write_public(nurse.public(), cfg.center.staff_dir / "karin.pub")
    passkeys = PasskeyStore(store.db, Sealer(keys, PASSKEY_CONTEXT))
    signin = SignInDesk(Sessions(b"k" * 32, 3600, clock), passkeys, AccessLog(store.db, Sealer(keys, ACCESS_CONTEXT), clock),
                        lambda name: keyring.staff_public(cfg, name), clock)
    app = make_app(Console(cfg, case_desk(cfg, store, keys), signin, secure=False, clock=clock,
                           residents=Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)), store=store))
    url = f"/api/report/morning?date={MORNING.isoformat()}"
    try:
        with TestClient(app, base_url=ORIGIN) as client:
            client.passkeys, client.log, client.clock, client.soft = passkeys, None, clock, {}
            assert client.get(url).status_code == 401
            sign_in(client, nurse)
            answer = client.get(url)
            assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
            assert answer.json()["homes"] == data["homes"]
            home = data["homes"][0]["home"]
            pdf = client.get(f"{url}&home={home}&format=pdf")
            assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
            html = client.get(f"{url}&home={home}&format=html")
            assert "attachment" in html.headers["content-disposition"] and data["homes"][0]["flags"][0]["text"] in html.text
            for bad, says in (("&date=2026-02-30", "date"), ("&home=hem-none", "hem-none"), ("&format=doc", "format")):
                refused = client.get(url.split("?")[0] + "?" + bad[1:])
                assert refused.status_code == 400 and says in refused.json()["error"], refused.text
    finally:
        store.close()


def test_a_finished_week_is_kept_whole_from_its_days_and_no_keep_writes_nothing(tmp_path, pki):
    from center.store import EventStore

    thursday = date(2026, 11, 26)
    truth = generate(make_center(tmp_path, pki), homes=3, days=24, morning=thursday, seed=7)
    cfg = cfgmod.load(truth.config)
    at_seven = datetime.combine(thursday, datetime.min.time().replace(hour=7), Nights(Settings()).zone).timestamp()

    def kept() -> list[str]:
        store = EventStore(cfg.store_url)
        try:
            return sorted(r[0] for r in store.db.query("SELECT day FROM report_days WHERE home = 'hem-r000'"))
        finally:
            store.close()
    dry = report(cfg, thursday, None, _settings(cfg), at_seven, keep=False)
    assert kept() == []
    first = report(cfg, thursday, None, _settings(cfg), at_seven)
    assert first["homes"] == dry["homes"]
    assert kept()[-4:] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26+"]  # finished days; today so far
    assert kept()[-5] == "2026-11-16/7"  # last week as one
    # later that day one more message (device health): only it is opened, and never verified (not counted)
    _record(cfg, truth, "hem-r000", "telemetry", "device_health", at_seven + 2 * 3600, {"cpu_temp_c": 50.0})
    again = report(cfg, thursday, None, _settings(cfg), at_seven + 3 * 3600)
    assert again["homes"] == first["homes"]
    assert (again["opened"]["envelopes"], again["opened"]["verified"], again["opened"]["skipped"]) == (1, 0, 1)
    monday = at_seven + 4 * 86400 + 3600  # the next Monday's report: last week is finished
    later = report(cfg, thursday + timedelta(days=4), None, _settings(cfg), monday)
    assert kept()[-2:] == ["2026-11-16/7", "2026-11-23/7"]  # the week made from its days' digests and Thursday's part
    assert later["opened"]["envelopes"] == 0  # Thursday's part covers Thursday: nothing opened again
    assert later["opened"]["digests"] == 3 * 3 + 3 * 4  # three earlier weeks; this week's three days and a part


def test_a_part_of_a_day_that_no_longer_matches_is_opened_again(tmp_path, pki):
    """A day's part is used only while the events up to its newest are exactly those it covers: an
    event recorded later with an earlier received time (another receiver's clock) opens the day again."""
    thursday = date(2026, 11, 26)
    truth = generate(make_center(tmp_path, pki), homes=1, days=20, morning=thursday, seed=9)
    cfg = cfgmod.load(truth.config)
    at_seven = datetime.combine(thursday, datetime.min.time().replace(hour=7), Nights(Settings()).zone).timestamp()
    first = report(cfg, thursday, None, _settings(cfg), at_seven)
    _record(cfg, truth, "hem-r000", "alarm", "bed_exit", at_seven - 2 * 3600, {})  # 05:00, received "05:00"
    second = report(cfg, thursday, None, _settings(cfg), at_seven + 60)
    night = (thursday - timedelta(days=1)).isoformat()
    assert second["homes"][0]["last_night"]["bed_exits"] == first["homes"][0]["last_night"]["bed_exits"] + 1
    assert second["opened"]["envelopes"] > 1 and second["homes"][0]["nights"][-1]["night"] == night


def _record(cfg, truth, home: str, cls: str, kind: str, at: float, body: dict) -> None:
    """One more real event of the home, sealed as its device does, recorded with received = at."""
    from base.keys import load_public
    from center.store import EventStore, Received
    from protocol import envelope, topics
    from protocol.ids import new_id
    from protocol.messages import EventMessage, encode

    topic = topics.up(home, cls)
    message = EventMessage(id=new_id(), home=home, cls=cls, kind=kind, time=datetime.fromtimestamp(at).astimezone(),
                           clock_synced=True, body=body)
    sealed = envelope.seal(encode(message), topic, truth.devices[home].sign,
                           load_public(cfg.center.key.with_suffix(".pub")).kem)
    store = EventStore(cfg.store_url)
    try:
        store.record([Received(message.id, home, cls, topic, sealed, at)])
    finally:
        store.close()


def test_a_cleared_lock_fault_shows_cleared(tmp_path, pki, make_home):  # noqa: F811
    """The real lock driver jams and frees again (drivers/lock.py): its lock_fault names no
    component, its fault_cleared says "lock:front-door"; the report shows the fault cleared, in
    Swedish words, and raises no fault flag. A second lock's fault, never cleared, stays open."""
    from base.keys import load_public
    from center.store import EventStore, Received
    from drivers.lock import LockError
    from protocol import envelope, topics
    from protocol.ids import new_id
    from protocol.messages import EventMessage, encode

    truth = generate(make_center(tmp_path, pki), homes=1, days=36, morning=MORNING, seed=3, planted_share=0)
    cfg = cfgmod.load(truth.config)
    device_home = make_home()
    lock = device_home.open("front-door")
    device_home.world.jam("front-door")
    with pytest.raises(LockError):
        lock.unlock("anna")
    device_home.world.jam("front-door", False)
    device_home.set("front-door", "bolt", "retracted")
    device_home.set("front-door", "bolt", "thrown")
    cabinet = device_home.open("medicine-cabinet")
    device_home.world.jam("medicine-cabinet")
    with pytest.raises(LockError):
        cabinet.unlock("anna")
    emitted = [e for e in device_home.events.events if e.kind in ("lock_fault", "fault_cleared")]
    assert [e.kind for e in emitted] == ["lock_fault", "fault_cleared", "lock_fault"]
    assert "component" not in emitted[0].body and emitted[1].body["component"] == "lock:front-door"

    home = "hem-r000"
    at = datetime.combine(MORNING - timedelta(days=1), datetime.min.time().replace(hour=23), Nights(Settings()).zone)
    center_kem = load_public(cfg.center.key.with_suffix(".pub")).kem
    rows = []
    for i, e in enumerate(emitted):
        when = at + timedelta(minutes=10 * i)
        topic = topics.up(home, e.cls)
        message = EventMessage(id=new_id(), home=home, cls=e.cls, kind=e.kind, time=when, clock_synced=True, body=e.body)
        rows.append(Received(message.id, home, e.cls, topic, envelope.seal(encode(message), topic,
                                                                           truth.devices[home].sign, center_kem),
                             when.timestamp() + 1))
    store = EventStore(cfg.store_url)
    try:
        store.record(rows)
    finally:
        store.close()
    [got] = report(cfg, MORNING, home, _settings(cfg), time.time())["homes"]
    door, cabinet_fault = got["faults"]
    assert door["component"] == "lock:front-door" and door["cleared"] is not None, door
    assert cabinet_fault["component"] == "lock:medicine-cabinet" and cabinet_fault["cleared"] is None
    assert door["text"] == "fel på dörrlåset"
    assert [f["what"] for f in got["flags"] if f["what"] == "fault"] == ["fault"]  # the cabinet's only
