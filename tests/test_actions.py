"""Command actions are declared once (protocol/actions.py) and handled once (agent/actions.py)."""

import pytest

from agent.actions import DEFAULT_ROLES, build_actions, handles
from protocol.actions import ACTION_ARGS, ACTIONS, command_args


def test_every_action_of_the_protocol_has_one_handler_on_the_device():
    with_camera = build_actions({}, status=dict, switch_center_key=str, lookin=lambda c, s: {}, change_grant=dict)
    assert set(with_camera) == set(ACTIONS)
    without = build_actions({}, status=dict, switch_center_key=str)
    assert set(ACTIONS) - set(without) == {"lookin", "lookin_grant"}


def test_the_default_roles_come_from_the_handlers_registrations():
    assert DEFAULT_ROLES == {
        "night-staff": ["unlock", "lock", "ping", "status", "lookin", "help_coming"],
        "nurse": ["unlock", "lock", "ping", "status", "lookin_grant", "help_coming"],
        "technician": ["lock", "ping", "status", "switch_center_key"],
    }


def test_a_handler_for_an_action_the_protocol_does_not_know_is_refused_at_registration():
    with pytest.raises(ValueError, match="not an action of the protocol"):
        handles("open_window", "nurse")


def test_the_arguments_each_action_takes_are_its_models_fields():
    assert ACTION_ARGS["unlock"] == ("lock",)
    assert ACTION_ARGS["ping"] == ()
    assert ACTION_ARGS["lookin_grant"] == ("privacy", "max_per_night", "roles", "windows", "times", "tolerance_s")


def test_the_center_builds_a_commands_arguments_with_the_actions_model():
    assert command_args("unlock", {"lock": "front-door"}) == {"lock": "front-door"}
    assert command_args("lookin_grant", {"privacy": "blur", "times": None}) == {"privacy": "blur"}
    with pytest.raises(ValueError, match="no action 'fly'"):
        command_args("fly", {})
    with pytest.raises(ValueError, match="unlock: door"):
        command_args("unlock", {"lock": "front-door", "door": "back"})
    with pytest.raises(ValueError, match="lookin_grant: max_per_night"):
        command_args("lookin_grant", {"max_per_night": 99})
    with pytest.raises(ValueError, match="unlock: lock"):
        command_args("unlock", {})
