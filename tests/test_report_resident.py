"""The resident's own record (GDPR art. 15): every look-in and every entry through the digital
lock of one month, from the home's audit chain as its device wrote and forwarded it (the
device's real AuditLog, sealed; real sealed events in a real store), checked against what the
generator did. Two homes: A's record holds nothing of B's. A tampered entry shows, by its
number, and what follows it is marked unchecked. PDF pages rendered to pictures."""

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from center.reports import resident
from center.reports.responsecli import add_to
from center.store import EventStore
from tests.support.reportcases import fill_resident, make_center

MONTH = "2026-11"
STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=STOCKHOLM).timestamp()
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
A, B, C = "hem-astrid", "hem-bertil", "hem-cecilia"


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    work = tmp_path_factory.mktemp("resident")
    center = make_center(work / "center")
    store = EventStore(center.cfg.store_url)
    truth = {A: fill_resident(center, store, A, "Astrid Andersson", MONTH, work, ("anna", "bo"), seed=1),
             B: fill_resident(center, store, B, "Bertil Berg", MONTH, work, ("cilla", "david"), seed=2)}
    tamper = truth[A][5].seq + 2  # some entry in the middle of C's trail (C's numbering is like A's)
    truth[C] = fill_resident(center, store, C, "Cecilia Ceder", MONTH, work, ("elin", "fredrik"), seed=3,
                             tamper=tamper)
    reports = {home: resident.report(center.cfg, store, home, MONTH, NOW) for home in (A, B, C)}
    yield center, store, truth, reports, tamper
    store.close()


def local(ts: float) -> str:
    return datetime.fromtimestamp(ts, STOCKHOLM).strftime("%Y-%m-%d kl. %H:%M")


def test_every_look_in_is_there_with_who_when_how_long_the_filter_and_the_grant(homes):
    _center, _store, truth, reports, _t = homes
    for home in (A, B):
        want = [v for v in truth[home] if v.what == "lookin"]
        got = reports[home]["lookins"]
        assert len(got) == len(want) > 5
        for v, row in zip(want, got, strict=True):
            assert row["when"] == local(v.at)
            assert row["who"] == f"{v.staff.capitalize()} (nattpersonal)"
            assert row["done"] == (v.outcome == "done")
            if v.outcome == "done":
                assert row["filter"] == resident.FILTERS[v.privacy]
                assert row["grant"].startswith("ja")
                assert row["how_long"] == ("under 1 s" if v.capture_ms < 1000 else f"{round(v.capture_ms / 1000)} s")
            else:
                assert row["grant"] == f"nej – nekades: {resident.REFUSALS[v.code]}"
    assert any(not r["done"] for r in reports[A]["lookins"]), "a refused look-in is shown too"


def test_every_entry_through_the_lock_says_how_long_they_stayed_and_why(homes):
    _center, _store, truth, reports, _t = homes
    from center.reports.stats import minutes
    from center.wording import Words

    for home in (A, B):
        want = [v for v in truth[home] if v.what == "unlock"]
        got = reports[home]["entries"]
        assert len(got) == len(want) >= 3
        for v, row in zip(want, got, strict=True):
            assert (row["when"], row["door"]) == (local(v.at), "Ytterdörren")
            assert row["who"] == f"{v.staff.capitalize()} (nattpersonal)"
            if v.locked_after_s is None:
                assert row["inside"].startswith("okänt")
            else:
                assert row["inside"] == minutes(v.locked_after_s)
            if v.case_kinds:
                assert row["why"] == "larm: " + Words("sv").kind(v.case_kinds[0])
            else:
                assert row["why"].startswith("planerat besök")
    whys = {r["why"].split(":")[0] for h in (A, B) for r in reports[h]["entries"]}
    assert whys == {"larm", "planerat besök (inget larm)"}, "the month has both kinds of entry"


def test_the_record_says_the_chain_verified(homes):
    _center, _store, _truth, reports, _t = homes
    for home in (A, B):
        chain = reports[home]["chain"]
        assert chain["ok"] and chain["first_seq"] == 1 and chain["hashes_checked"] == chain["entries"]
        assert "kontrollerad och hel" in chain["said"]
        assert all(r["verified"] for r in reports[home]["lookins"] + reports[home]["entries"])


def test_a_tampered_entry_shows_by_its_number_and_what_follows_is_marked_unchecked(homes):
    _center, _store, _truth, reports, tamper = homes
    data = reports[C]
    assert not data["chain"]["ok"] and data["chain"]["first_bad"] == tamper
    assert f"vid post {tamper}" in data["chain"]["said"]
    rows = data["lookins"] + data["entries"]
    assert {r["seq"] for r in rows if not r["verified"]} == {r["seq"] for r in rows if r["seq"] >= tamper}
    assert any(r["verified"] for r in rows) and any(not r["verified"] for r in rows)
    html = resident.to_html(data)
    assert "VARNING" in html and html.count("Ej kontrollerad") == sum(not r["verified"] for r in rows)


def b_traces(truth) -> list[str]:
    """Everything that would identify B or B's visits."""
    return ["Bertil", "Berg", B, "Cilla", "David", *(v.command for v in truth[B])]


def test_a_residents_record_holds_nothing_of_another_resident(homes, tmp_path):
    import pypdfium2 as pdfium

    center, _store, truth, reports, _t = homes
    json_text = json.dumps(reports[A], ensure_ascii=False)
    html = resident.to_html(reports[A])
    out = tmp_path / "a.pdf"
    run = cli(center, "resident", A, "--month", MONTH, "--format", "pdf", "--out", str(out))
    assert run.exit_code == 0, run.output
    assert out.stat().st_mode & 0o777 == 0o600
    pdf = pdfium.PdfDocument(out)
    pdf_text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert "Astrid Andersson" in html and "Astrid Andersson" in re.sub(r"\s+", " ", pdf_text)
    for trace in b_traces(truth):
        for name, text in (("json", json_text), ("html", html), ("pdf", pdf_text)):
            assert trace not in text, f"{trace!r} of B in A's {name}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i in range(min(len(pdf), 2)):
        pdf[i].render(scale=1.4).to_pil().save(SHOTS / f"report-resident-p{i + 1}.png")
    pdf.close()


def test_the_record_is_html_through_the_cli_too_and_a_tampered_one_prints_its_warning(homes, tmp_path):
    import pypdfium2 as pdfium

    center, _store, _truth, _reports, tamper = homes
    run = cli(center, "resident", A, "--month", MONTH, "--format", "html")
    assert run.exit_code == 0 and "Vem har tittat in" in run.stdout and "Astrid Andersson" in run.stdout
    out = tmp_path / "c.pdf"
    assert cli(center, "resident", C, "--month", MONTH, "--out", str(out)).exit_code == 0
    pdf = pdfium.PdfDocument(out)
    text = re.sub(r"\s+", " ", "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf))))
    assert "VARNING" in text and f"vid post {tamper}" in text
    pdf[0].render(scale=1.4).to_pil().save(SHOTS / "report-resident-tampered-p1.png")
    pdf.close()


def test_an_unknown_home_or_month_is_one_line(homes):
    center, *_ = homes
    run = cli(center, "resident", "hem-okand", "--month", MONTH)
    assert run.exit_code == 1 and run.stderr.startswith("trygg: home hem-okand is not enrolled here")
    run = cli(center, "resident", A, "--month", "nov")
    assert run.exit_code == 1 and run.stderr.strip() == "trygg: --month must be a month like 2026-11, got 'nov'"


def cli(center, *args):
    group = click.Group("report")
    add_to(group)
    return CliRunner().invoke(group, [*args, "--config", str(center.config)], catch_exceptions=False)
