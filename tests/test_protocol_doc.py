"""docs/protocol.md against the protocol's code: the lists and tables an outside implementer reads.

An implementation written from the document alone must work with today's device and receiver,
so wherever the document lists something the code also declares - the topics, the event
classes, the message kinds and their models, every message's fields with their JSON types and
whether they may be left out, the online-only status fields, the actions and their arguments,
the look-in plan's fields, and every table of refusal codes - this test reads the document's
list and fails, naming both sides, when they differ.
"""

import re
import types
import typing
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from protocol import refusals, topics
from protocol.actions import ACTIONS
from protocol.events import CLASSES
from protocol.lookin import LookinPlan
from protocol.messages import MESSAGES, ONLINE_ONLY

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")
TICKED = re.compile(r"`([^`]+)`")


# -- reading the document -------------------------------------------------------------------------
def heading(title: str) -> int:
    """The line number of the one heading that contains `title`."""
    found = [i for i, line in enumerate(DOC.splitlines()) if line.startswith("#") and title in line]
    assert len(found) == 1, f"docs/protocol.md: {len(found)} headings contain {title!r}"
    return found[0]


def section(title: str) -> str:
    """The text under the one heading that contains `title`, up to the next heading of any level."""
    lines = DOC.splitlines()
    start = heading(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start + 1:end])


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table in text, as rows of {header: cell}."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            cells = [_cells(row) for row in block]
            header, rows = cells[0], cells[2:]
            out.append([dict(zip(header, row, strict=True)) for row in rows])
            block = []
    return out


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def table(title: str, first_column: str) -> list[dict[str, str]]:
    """The one table in the section `title` whose first header is `first_column`."""
    found = [t for t in tables(section(title)) if t and next(iter(t[0])) == first_column]
    assert len(found) == 1, f"docs/protocol.md §{title}: {len(found)} tables start with {first_column!r}"
    return found[0]


def table_with(title: str, header: str) -> list[dict[str, str]]:
    """The one table in the section `title` that has a column `header`."""
    found = [t for t in tables(section(title)) if t and header in t[0]]
    assert len(found) == 1, f"docs/protocol.md §{title}: {len(found)} tables have a column {header!r}"
    return found[0]


def ticked(cell: str) -> list[str]:
    return TICKED.findall(cell)


# -- what the code declares --------------------------------------------------------------------------
def json_type(annotation) -> str:
    """The JSON type a field's annotation declares, in the document's words."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            assert len(members) == 1, annotation
            annotation = members[0]
        else:
            break
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        if len(values) == 1 and isinstance(values[0], tuple):  # Literal[CLASSES]
            values = values[0]
        return "integer" if all(type(v) is int for v in values) else "string"
    if origin is list:
        return f"array of {json_type(typing.get_args(annotation)[0])}s"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return {str: "string", int: "integer", float: "number", bool: "boolean", datetime: "string"}[annotation]


def wire_fields(model: type[BaseModel]) -> dict[str, tuple[str, bool]]:
    """Each field as it is spelled on the wire: (JSON type, optional = may be left out)."""
    return {(field.alias or name): (json_type(field.annotation),
                                    field.default is None and field.default_factory is None)
            for name, field in model.model_fields.items()}


def documented_fields(title: str) -> dict[str, tuple[str, bool]]:
    """The field table of a section: field -> (JSON type, optional), as the document writes them."""
    out = {}
    for row in table(title, "field"):
        kind = row["JSON type"]
        optional = kind.endswith(", optional")
        kind = kind.removesuffix(", optional")
        kind = {"array of objects": "array of objects"}.get(kind, kind)
        for name in ticked(row["field"]):
            out[name] = (kind, optional)
    return out


# -- the lists ----------------------------------------------------------------------------------------
def test_topics_are_the_ones_the_code_builds():
    documented = {ticked(row["topic"])[0] for row in table("## 2. Topics", "topic")}
    home = "hem-1"
    built = {topics.up(home, CLASSES[0]).removesuffix(CLASSES[0]) + "<class>", topics.ack(home),
             topics.status(home), topics.command(home), topics.lookin(home)}
    assert documented == {t.replace(f"/{home}/", "/<home>/") for t in built}
    for topic in documented:  # and each documented form parses as the channel it names
        concrete = topic.replace("<home>", home).replace("<class>", CLASSES[0])
        assert topics.parse(concrete).home == home


def test_the_classes_are_the_protocols():
    line = next(line for line in section("## 2. Topics").splitlines() if line.startswith("- `<class>` is one of"))
    assert tuple(ticked(line.split("is one of", 1)[1].split("(")[0])) == CLASSES
    event_class = next(r for r in table("### 6.1 Event", "field") if ticked(r["field"]) == ["class"])
    assert tuple(t.strip('"') for t in ticked(event_class["constraint"].split(";")[0])) == CLASSES


def test_the_message_kinds_are_the_protocols():
    rows = table("## 6. Message bodies", "kind (`t`)")
    documented = {ticked(r["kind (`t`)"])[0]: ticked(r["model"])[0] for r in rows}
    assert documented == {kind: model.__name__ for kind, model in MESSAGES.items()}
    for kind, model in MESSAGES.items():  # and each model's `t` is its kind
        assert typing.get_args(model.model_fields["t"].annotation) == (kind,)


MODEL_SECTIONS = {
    "EventMessage": "### 6.1 Event", "AckMessage": "### 6.2 Ack", "StatusMessage": "### 6.3 Status",
    "FleetReport": "#### 6.3.1 Fleet report", "CommandMessage": "### 13.2 Command body",
    "LookinMessage": "### 14.2 Picture body", "LookinPlan": "### 14.3 The grant",
}


@pytest.mark.parametrize("model", [*MESSAGES.values(), LookinPlan], ids=lambda m: m.__name__)
def test_every_field_of_every_message_is_documented_with_its_json_type(model):
    title = MODEL_SECTIONS[model.__name__]
    assert f"`{model.__name__}`" in DOC.splitlines()[heading(title)] + section(title)
    documented, declared = documented_fields(title), wire_fields(model)
    assert set(documented) == set(declared), (title, set(documented) ^ set(declared))
    for name, (kind, optional) in declared.items():
        if model is LookinPlan and name == "windows":
            kind = "array of objects"
        assert documented[name] == (kind, optional), (title, name, documented[name], (kind, optional))


def test_the_online_only_status_fields_are_the_documented_ones():
    rows = table("### 6.3 Status", "field")
    documented = {ticked(r["field"])[0] for r in rows if "`online` only" in r["constraint"]}
    assert documented == set(ONLINE_ONLY)
    codes = [r for t in tables(section("### 6.4 Decoding")) for r in t]
    online_only = next(r for r in codes if ticked(r.get("code", "")) == ["online_only"])
    assert set(ticked(online_only["refused"])) >= set(ONLINE_ONLY)


def test_the_actions_and_their_arguments_are_the_protocols():
    command_action = next(r for r in table("### 13.2 Command body", "field") if ticked(r["field"]) == ["action"])
    understood = command_action["constraint"].split("understands", 1)[1].split("(")[0]
    assert ticked(understood) == list(ACTIONS)
    rows = table_with("### 13.8 Actions", "args")
    assert [ticked(r["action"])[0] for r in rows] == list(ACTIONS)
    for row in rows:
        action = ticked(row["action"])[0]
        assert set(ticked(row["args"])) == set(ACTIONS[action].model_fields), action
    documented: dict[tuple[str, str], tuple[str, bool]] = {}
    for row in table_with("### 13.8 Actions", "argument"):
        kind = row["JSON type"]
        for action in ticked(row["action"]):
            documented[(action, ticked(row["argument"])[0])] = (kind.removesuffix(", optional"),
                                                                kind.endswith(", optional"))
    declared = {(action, name): (json_type(field.annotation), not field.is_required())
                for action, model in ACTIONS.items() for name, field in model.model_fields.items()}
    assert documented == declared


# -- refusal codes ------------------------------------------------------------------------------------
def codes_in(title: str, first_column: str, column: str = "code") -> set[str]:
    return {code for row in table(title, first_column) for code in ticked(row[column])
            if re.fullmatch(r"[a-z_]+", code)}


def test_the_decode_and_place_codes_are_the_protocols():
    decode_tables = [t for t in tables(section("### 6.4 Decoding")) if t and next(iter(t[0])) == "code"]
    assert len(decode_tables) == 2
    assert {ticked(r["code"])[0] for r in decode_tables[0]} == set(refusals.DECODE)
    assert {ticked(r["code"])[0] for r in decode_tables[1]} == set(refusals.PLACE)


def test_the_envelope_codes_are_the_protocols():
    opening = codes_in("### 4.4 Opening", "#")
    signed = codes_in("## 5. Signed message", "#")
    assert opening | signed == set(refusals.ENVELOPE)


def test_the_freshness_policy_and_command_codes_are_the_protocols():
    assert [ticked(r["code"])[0] for r in table("### 13.4 Freshness", "#")] == list(refusals.FRESHNESS)
    policy = codes_in("### 13.7 Roles", "#") | codes_in("### 13.7 Roles", "rule")
    assert policy == set(refusals.POLICY)
    checks = {ticked(r["code"])[0].split(".")[0] for r in table("### 13.6 How the device judges", "#")}
    after = set(ticked(section("### 13.6 How the device judges").split("Then the action runs", 1)[1].split(
        "Steps 1–8", 1)[0]))
    assert checks | (after & set(refusals.COMMAND)) == set(refusals.COMMAND)


def test_the_actions_own_codes_are_the_protocols():
    documented: dict[str, set[str]] = {action: set() for action in ACTIONS}
    for row in table_with("### 13.8 Actions", "outcome"):
        for action in ticked(row["action"]):
            documented[action] |= set(ticked(row["code"]))
    assert documented == {action: set(codes) for action, codes in refusals.ACTION.items()}
    lookin = codes_in("### 14.1 Order of checks", "#")
    assert lookin == {c for c, meaning in refusals.ACTION["lookin"].items() if meaning.startswith("refused")}
