"""The monthly response-time report against the municipality's promise, checked against the truth
of a generated municipality (300 homes, two months, in a real SQLite store through the case
desk's own code): counts, medians and 90th percentiles per area and alarm kind, the share within
the promise, and every case outside it with its reason. Each format is produced (JSON, HTML,
PDF through the CLI); the PDF's pages are rendered to pictures under build/screenshots/.
The promise's config is checked like the rest: one line naming the key."""

import json
import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from base.errors import ConfigError
from center import config as cfgmod
from center.reports import response
from center.reports.responsecli import add_to
from center.store import EventStore
from tests.support.reportcases import fill_cases, make_center

MONTH = "2026-11"
NOW = datetime(2027, 1, 15, 9, 0, tzinfo=ZoneInfo("Europe/Stockholm")).timestamp()
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
STOCKHOLM = ZoneInfo("Europe/Stockholm")
# alarms planted one minute either side of local midnight at the month's edges (UTC is an hour behind)
EDGE = {"hem-grans-1": [datetime(2026, 10, 31, 23, 59, tzinfo=STOCKHOLM).timestamp(),
                        datetime(2026, 11, 30, 23, 59, tzinfo=STOCKHOLM).timestamp()],
        "hem-grans-2": [datetime(2026, 11, 1, 0, 1, tzinfo=STOCKHOLM).timestamp(),
                        datetime(2026, 12, 1, 0, 1, tzinfo=STOCKHOLM).timestamp()],
        "hem-oppen": [datetime(2026, 11, 28, 3, 0, tzinfo=STOCKHOLM).timestamp()]}  # left open


def _homes() -> dict[str, str]:
    homes = {f"hem-{i:03d}": ("" if i % 10 == 0 else "tatort" if i % 3 else "landsbygd") for i in range(300)}
    return {**homes, "hem-grans-1": "tatort", "hem-grans-2": "", "hem-oppen": ""}


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    homes = _homes()
    areas = {"tatort": {"label": "Tätort", "homes": sorted(h for h, a in homes.items() if a == "tatort")},
             "landsbygd": {"label": "Landsbygd", "on_site_within_min": 60,
                           "homes": sorted(h for h, a in homes.items() if a == "landsbygd")}}
    center = make_center(tmp_path_factory.mktemp("response") / "center", areas)
    store = EventStore(center.cfg.store_url)
    truth = fill_cases(center, store, homes, ["2026-10", MONTH], planted=EDGE, keep_open=frozenset({"hem-oppen"}))
    data = response.report(center.cfg, store, MONTH, NOW)
    yield center, store, truth, data
    store.close()


def in_month(truth):
    start = datetime(2026, 11, 1, tzinfo=STOCKHOLM).timestamp()
    end = datetime(2026, 12, 1, tzinfo=STOCKHOLM).timestamp()
    return [c for c in truth if start <= c.opened < end]


def pct(values: list[float], p: float) -> float | None:
    """The inclusive percentile, written out: rank (n-1)p between the sorted values."""
    xs = sorted(values)
    if not xs:
        return None
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    return xs[lo] if lo + 1 >= len(xs) else xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])


def expected(cases) -> dict:
    def times(attr):
        xs = [getattr(c, attr) - c.opened for c in cases if getattr(c, attr) is not None]
        return len(xs), pct(xs, 0.5), pct(xs, 0.9)

    n = len(cases)
    return {"cases": n, "to_accept": times("accepted"), "to_on_site": times("on_site"), "to_close": times("closed"),
            "answer": sum(not c.late_answer for c in cases) / n, "on_site": sum(not c.late_on_site for c in cases) / n,
            "both": sum(not (c.late_answer or c.late_on_site) for c in cases) / n}


def check_group(group: dict, cases) -> None:
    want = expected(cases)
    assert group["cases"] == want["cases"]
    for key in ("to_accept", "to_on_site", "to_close"):
        n, median, p90 = want[key]
        assert group[key]["n"] == n, key
        assert group[key]["median_s"] == pytest.approx(median, abs=0.051), key
        assert group[key]["p90_s"] == pytest.approx(p90, abs=0.051), key
    for key in ("answer", "on_site", "both"):
        assert group["share_within"][key] == pytest.approx(want[key]), key


def test_the_month_is_counted_in_local_time_with_its_medians_p90_and_share_within_the_promise(town):
    _center, _store, truth, data = town
    cases = in_month(truth)
    assert len(cases) > 300, "the generator should give a real month"
    planted = {t for times in EDGE.values() for t in times}
    edge = {(c.home, c.opened) for c in cases if c.opened in planted and c.home != "hem-oppen"}
    assert edge == {("hem-grans-1", EDGE["hem-grans-1"][1]), ("hem-grans-2", EDGE["hem-grans-2"][0])}
    check_group(data["total"], cases)
    assert 0.6 < data["total"]["share_within"]["both"] < 0.9, "the plan has both inside and outside cases"


def test_each_area_is_judged_against_its_own_promise(town):
    _center, _store, truth, data = town
    cases = in_month(truth)
    by_area = {a["area"]: a for a in data["by_area"]}
    assert set(by_area) == {"tatort", "landsbygd", "ovriga"}
    assert by_area["landsbygd"]["promise"] == {"answer_s": 180.0, "on_site_s": 3600.0}
    assert by_area["tatort"]["promise"] == {"answer_s": 180.0, "on_site_s": 1800.0}
    for area, group in by_area.items():
        check_group(group, [c for c in cases if c.area == area])
    assert by_area["landsbygd"]["to_on_site"]["median_s"] > by_area["tatort"]["to_on_site"]["median_s"]


def test_each_alarm_kind_has_its_own_figures(town):
    _center, _store, truth, data = town
    cases = in_month(truth)
    kinds = {k["kind"]: k for k in data["by_kind"]}
    assert set(kinds) == {c.kind for c in cases}
    for kind, group in kinds.items():
        check_group(group, [c for c in cases if c.kind == kind])
    assert kinds["fall"]["label"] != "fall", "staff read words, not ids"


def test_every_case_outside_the_promise_is_listed_with_its_outcome_and_note(town):
    center, _store, truth, data = town
    late = {c.id: c for c in in_month(truth) if c.late_answer or c.late_on_site}
    listed = {o["case"]: o for o in data["outside"]}
    assert set(listed) == set(late)
    assert data["total"]["outside"] == len(late)
    for case_id, case in late.items():
        item = listed[case_id]
        assert item["missed"] == [m for m, late_ in (("answer", case.late_answer), ("on_site", case.late_on_site))
                                  if late_]
        assert (item["outcome"], item["note"], item["home"]) == (case.outcome, case.note, case.home)
        if case.outcome:
            assert item["outcome_label"] == center.cfg.cases.outcomes[case.outcome]
    assert any(o["note"] for o in data["outside"]) and any(o["state"] != "closed" for o in data["outside"])


def test_html_shows_the_figures_and_every_outside_case_with_its_note(town):
    _center, _store, _truth, data = town
    html = response.to_html(data)
    assert "Svarstider mot kommunens löfte" in html and "november 2026" in html.lower()
    assert f'{data["total"]["cases"]}</td>' in html
    for item in data["outside"]:
        assert item["case"][-8:] in html
    notes = {o["note"] for o in data["outside"] if o["note"]}
    assert notes and all(note in html for note in notes)
    assert "quantiles(method=&#39;inclusive&#39;)" in html, "the footnote says how percentiles are computed"


def test_a_note_cannot_inject_markup(town):
    _center, _store, _truth, data = town
    sneaky = json.loads(json.dumps(data))
    sneaky["outside"][0]["note"] = "<script>alert(1)</script>"
    assert "<script>" not in response.to_html(sneaky)


def cli(center, *args):
    group = click.Group("report")
    add_to(group)
    return CliRunner().invoke(group, [*args, "--config", str(center.config)], catch_exceptions=False)


def test_the_cli_gives_the_same_numbers_as_json_and_a_pdf_whose_pages_are_pictures(town, tmp_path):
    import pypdfium2 as pdfium

    center, _store, _truth, data = town
    run = cli(center, "response", "--month", MONTH, "--format", "json")
    assert run.exit_code == 0, run.output
    got = json.loads(run.stdout)
    assert got["total"] == data["total"] and got["by_area"] == data["by_area"] and got["outside"] == data["outside"]
    out = tmp_path / "svarstider.pdf"
    run = cli(center, "response", "--month", MONTH, "--format", "pdf", "--out", str(out))
    assert run.exit_code == 0, run.output
    assert out.stat().st_mode & 0o777 == 0o600
    pdf = pdfium.PdfDocument(out)
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert "Svarstider mot kommunens löfte" in text
    assert all(o["case"][-8:] in text for o in data["outside"]), "every outside case is printed"
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i in range(min(len(pdf), 2)):
        pdf[i].render(scale=1.4).to_pil().save(SHOTS / f"report-response-p{i + 1}.png")
    pdf.close()


def test_a_bad_month_is_one_line_naming_it(town):
    center, *_ = town
    run = cli(center, "response", "--month", "2026-13")
    assert run.exit_code == 1
    assert run.stderr.strip() == "trygg: --month must be a month like 2026-11, got '2026-13'"


@pytest.mark.parametrize("section, message", [
    ('[promise.areas.a]\nhomes = ["hem-1"]\n[promise.areas.b]\nhomes = ["hem-1"]',
     "home 'hem-1' is in both 'a' and 'b'"),
    ('[promise.areas."Tätort"]\nhomes = []', "area name 'Tätort'"),
    ('[promise.areas.a]\nhomes = ["hem 1"]', "promise.areas.a.homes"),
    ('[promise.areas.a]\nhomez = []', "promise.areas.a.homez: unknown key"),
    ("[promise]\non_site_within_min = 0", "promise.on_site_within_min"),
    ('[promise]\ntime_zone = "Mars/Olympus"', "promise.time_zone"),
])
def test_a_bad_promise_config_is_one_line_naming_the_key(tmp_path, section, message):
    path = tmp_path / "center.toml"
    path.write_text(f'[broker]\nhost = "h"\nca = "a"\ncert = "b"\nkey = "c"\n{section}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        cfgmod.load(path)
    assert message in str(err.value)


def test_a_month_across_a_daylight_saving_change_is_its_local_length():
    from center.reports.stats import month_bounds

    bounds = {m: month_bounds(m, "Europe/Stockholm") for m in ("2026-03", "2026-10", "2026-11", "2026-12")}
    hours = {m: (end - start) / 3600 for m, (start, end) in bounds.items()}
    assert hours == {"2026-03": 31 * 24 - 1, "2026-10": 31 * 24 + 1, "2026-11": 30 * 24, "2026-12": 31 * 24}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_any_month_text_is_a_month_or_one_line_naming_it(text):
    from base.errors import TryggError
    from center.reports.stats import month_bounds

    try:
        start, end = month_bounds(text, "Europe/Stockholm")
    except TryggError as exc:
        assert str(exc) == f"--month must be a month like 2026-11, got {text!r}"
    else:
        first = datetime.fromtimestamp(start, STOCKHOLM)
        assert (first.day, first.hour, f"{first:%Y-%m}") == (1, 0, text.strip())
        assert 28 * 86400 - 3600 <= end - start <= 31 * 86400 + 3600
