"""The resident's look-in grant, enforced on the device: hours, agreed times, roles, count per
night (surviving a restart), and fail closed without a synchronized clock."""

from datetime import datetime, timezone

import pytest

from agent.config import DeviceConfig
from base.errors import ConfigError
from agent.grant import Grant
from protocol.names import night_of
from agent.trustdb import TrustDB
from tests.support.fakes import FakeClock

BROKER = {"host": "x", "ca": "a", "cert": "b", "key": "c"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def grant_for(tmp_path, clock, **lookin) -> Grant:
    cfg = DeviceConfig.model_validate({"home": {"id": "h1"}, "broker": BROKER,
                                       "lookin": {"camera": "synthetic", **lookin}})
    return Grant(cfg.lookin, cfg.home.timezone, clock, TrustDB(tmp_path / "trust.db"))


def look(grant: Grant) -> int:
    """Count one look-in; returns how many are left tonight."""
    with grant.trust.write() as conn:
        grant.count(conn)
    return grant.left()


def test_look_ins_only_inside_the_granted_hours_for_granted_roles(tmp_path):
    clock = FakeClock(utc("2026-11-24T22:30:00"))  # 23:30 in Stockholm
    grant = grant_for(tmp_path, clock, roles=["night-staff"], windows=[{"start": "22:00", "end": "06:00"}])
    assert grant.refusal("night-staff") is None
    assert "does not let role nurse look in" in grant.refusal("nurse")
    clock.advance(8 * 3600)  # 07:30
    assert "outside the granted look-in hours (22:00-06:00)" == grant.refusal("night-staff")


def test_agreed_times_allow_a_look_in_only_within_the_tolerance(tmp_path):
    clock = FakeClock(utc("2026-11-24T22:20:00"))  # 23:20 local; agreed 23:30 ± 15 min
    grant = grant_for(tmp_path, clock, times=["23:30", "03:00"], tolerance_s=900)
    assert grant.refusal("night-staff") is None
    clock.advance(26 * 60)  # 23:46
    assert "23:30, 03:00 ± 15 min" in grant.refusal("night-staff")
    clock.advance(3 * 3600)  # 02:46
    assert grant.refusal("night-staff") is None


def test_agreed_time_near_midnight_counts_across_the_date_change(tmp_path):
    clock = FakeClock(utc("2026-11-24T23:05:00"))  # 00:05 local; agreed 23:55 ± 15 min
    grant = grant_for(tmp_path, clock, times=["23:55"], tolerance_s=900)
    assert grant.refusal("night-staff") is None


def test_the_count_per_night_survives_a_restart_and_renews_the_next_night(tmp_path):
    clock = FakeClock(utc("2026-11-24T22:00:00"))  # 23:00 local
    grant = grant_for(tmp_path, clock, max_per_night=2)
    assert grant.left() == 2
    assert look(grant) == 1
    clock.advance(3 * 3600)  # 02:00, the same night
    assert look(grant) == 0
    assert "the 2 look-in(s) granted for tonight are used" == grant.refusal("night-staff")
    grant.trust.close()
    again = grant_for(tmp_path, clock, max_per_night=2)  # the daemon restarted
    assert again.left() == 0 and again.refusal("night-staff") is not None
    clock.advance(20 * 3600)  # 22:00 the next evening
    assert again.left() == 2 and again.refusal("night-staff") is None


def test_without_a_synchronized_clock_every_look_in_is_refused(tmp_path):
    clock = FakeClock(utc("2026-11-24T22:30:00"), synced=False)
    grant = grant_for(tmp_path, clock)
    assert "clock not synchronized" in grant.refusal("night-staff")
    assert grant.left() is None


def test_no_camera_means_no_look_in(tmp_path):
    clock = FakeClock(utc("2026-11-24T22:30:00"))
    grant = grant_for(tmp_path, clock, camera="none")
    assert grant.refusal("night-staff") == "no camera in this home"


@pytest.mark.parametrize("local, night", [("2026-11-24T23:00:00", "2026-11-24"), ("2026-11-25T05:00:00", "2026-11-24"),
                                          ("2026-11-25T12:00:00", "2026-11-25")])
def test_a_night_runs_from_noon_to_noon(local, night):
    assert night_of(datetime.fromisoformat(local)) == night


def test_grant_config_names_known_roles_and_valid_times(tmp_path):
    from agent.config import parse

    with pytest.raises(ConfigError) as err:
        parse({"home": {"id": "h1"}, "broker": BROKER, "lookin": {"camera": "synthetic", "times": ["25:00"]}},
              DeviceConfig, tmp_path)
    assert "lookin.times.0: expected a time as HH:MM" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse({"home": {"id": "h1"}, "broker": BROKER, "lookin": {"camera": "synthetic", "roles": ["cleaner"]}},
              DeviceConfig, tmp_path)
    assert "lookin.roles names role 'cleaner', which is not in [roles]" in str(err.value)
