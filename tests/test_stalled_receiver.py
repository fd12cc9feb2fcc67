"""A stalled receiver must not delay a new alarm: real daemon, real receiver, Mosquitto's default queue.

The receiver process is stopped (SIGSTOP: its connection stays up, so the broker queues for
it, up to max_queued_messages = 1000, then drops) while thousands of rows wait in the home's
outbox. Re-sending the whole unacknowledged window into that silence fills the queue, and the
broker then drops what is new - a fall included - until the next re-send.
"""

import os
import signal
import time

import pytest

from tests.support.lab import wait_for

pytestmark = pytest.mark.slow
RESEND_S = 3.0  # short, so that the old behaviour re-sends the window several times during the stall
STALL_S = 10.0


def test_alarm_raised_during_a_receiver_stall_is_shown_at_once_after_it(lab):
    watch = lab.watch()
    home = lab.home("hem-stall", outbox={"resend_after_s": RESEND_S}).start()
    watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "device_health", timeout=20)
    wait_for(lambda: home.depth() == 0, 15, "the start-up messages to be acked")

    os.kill(watch.proc.pid, signal.SIGSTOP)
    try:
        published_before = home.status()["published"]
        backlog = home.simulate("telemetry", kind="device_health", count=3000)
        time.sleep(STALL_S / 2)
        [fall] = home.simulate("alarm", kind="fall")
        time.sleep(STALL_S / 2)
        published_in_stall = home.status()["published"] - published_before
    finally:
        os.kill(watch.proc.pid, signal.SIGCONT)
    resumed = time.time()

    watch.wait_ids([fall], timeout=30)
    shown_after = watch.arrived[fall] - resumed
    # Into silence: the window once, then only alarms and one probe per re-send interval.
    assert published_in_stall <= 500 + 2 * (STALL_S / RESEND_S + 2), \
        f"{published_in_stall} messages published into a stalled receiver"
    assert shown_after < 3.0, f"the fall raised during the stall was shown {shown_after:.1f} s after the receiver resumed"
    watch.wait_ids(backlog, timeout=60)
    wait_for(lambda: home.depth() == 0, 30, "the outbox to empty")
