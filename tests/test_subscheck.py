"""subscheck.py's pure parts: the probe's exact topic for each kind of subscription a receiver
makes, the SUBACK codes that count as refused, and the probe's mark. The parts that talk to a
broker are held by tests/test_center_doctor.py and tests/test_receiver_link.py (real Mosquitto)."""

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from center import subscheck
from protocol import topics


def test_the_probe_goes_to_an_exact_topic_the_lane_reads_without_any_shared_group_prefix():
    """A probe sent to "$share/..." or to a wildcard would never come back: the lane would be called deaf."""
    assert subscheck.probe_topic("$share/rx/trygg/v1/+/up/alarm", "center") == "trygg/v1/center/up/alarm"
    assert subscheck.probe_topic("trygg/v1/+/up/+", "center") == "trygg/v1/center/up/test"
    assert subscheck.probe_topic("$share/rx/trygg/v1/+/up/event", "rx-2") == "trygg/v1/rx-2/up/event"
    for identity in (None, "Center Two", "-x"):  # no home id: a segment no home can have
        assert subscheck.probe_topic("trygg/v1/+/up/alarm", identity) == "trygg/v1/trygg-probe/up/alarm"
    assert topics.parse(subscheck.probe_topic("$share/rx/trygg/v1/+/up/+", "center")).channel == "up"


def test_only_suback_codes_from_0x80_up_are_refusals_and_each_names_its_topic_and_the_fix():
    granted = [ReasonCode(PacketTypes.SUBACK, identifier=code) for code in (0, 1, 2)]
    assert subscheck.refusals(["a/1", "a/2", "a/3"], granted) == []
    codes = [ReasonCode(PacketTypes.SUBACK, identifier=1), ReasonCode(PacketTypes.SUBACK, identifier=0x80),
             ReasonCode(PacketTypes.SUBACK, identifier=0x87)]
    lines = subscheck.refusals(["a/1", "a/2", "a/3"], codes)
    assert len(lines) == 2 and "a/2" in lines[0] and "0x80" in lines[0] and "a/3" in lines[1] and "0x87" in lines[1]
    assert all(line.startswith(subscheck.RECEIVES_NOTHING) and line.endswith(subscheck.ACL_FIX) for line in lines)
    assert subscheck.refusals(["b"], [0x80]) and not subscheck.refusals(["b"], [0x7F])  # plain ints too
    assert subscheck.without_fix(lines[0]) == lines[0].removesuffix(f"; {subscheck.ACL_FIX}") != lines[0]


def test_every_probe_is_marked_and_unique_and_nothing_else_is_taken_for_one():
    one, two = subscheck.new_probe(), subscheck.new_probe()
    assert one != two and subscheck.is_probe(one) and subscheck.is_probe(bytearray(two))
    assert not subscheck.is_probe(b"") and not subscheck.is_probe(one[1:]) and not subscheck.is_probe(b"\x02" + one)
