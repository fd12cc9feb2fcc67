"""An unlock never answers "already unlocked" about a door whose bolt was just thrown by hand.

On MockFactory pins (tests/support/homekit.py): during a staff visit the relay holds the bolt
back; someone throws the bolt by hand, the edge wakes the driver and its debounce passes, and a
second unlock arrives before the driver's thread has stepped. The lock must look at its bolt
first (as lock() does): that visit ended by hand, and this unlock really drives the bolt back.
Before, it answered {"state": "unlocked", "already": True} from the relay alone, night staff
read DONE, and the door was locked.
"""

from tests.support.homekit import make_home  # noqa: F401 - fixture


def test_unlock_right_after_the_bolt_was_thrown_by_hand_drives_it_again_not_already_unlocked(make_home):
    home = make_home()
    lock = home.open("front-door")
    assert lock.unlock("anna")["state"] == "unlocked"
    home.run(5)
    home.set("front-door", "bolt", "thrown", settle=False)  # by hand: the edge wakes the driver, debounce starts
    home.clock.advance(lock.inputs["bolt"].debounce_s + 0.05)  # debounce over; the driver's thread has not stepped

    result = lock.unlock("berit")
    assert "already" not in result and result["state"] == "unlocked", result
    assert lock.relay.value == 1 and lock.bolt.stable is False and lock.state == "unlocked"
    ended = home.events.one("visit", "event").body
    assert ended["staff"] == "anna" and ended["ended"] == "locked by hand"
    assert lock.visit is not None and lock.visit["staff"] == "berit"
    home.run(1)
    assert lock.state == "unlocked", home.events.kinds()  # what staff were told is what the bolt says


def test_unlock_of_a_door_already_unlocked_by_staff_still_says_already(make_home):
    """The control: with the bolt still back, a second unlock is the documented "already"."""
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    home.run(5)
    assert lock.unlock("berit") == {"state": "unlocked", "already": True}
    assert lock.visit["staff"] == "anna"
