"""The ``<<STATIC>>`` / ``<<DYNAMIC>>`` markers: splitting and removal, on texts and on messages."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from modelforge.optimizers._google import static_prefix
from modelforge.optimizers._markers import split_markers, split_message, strip_markers, strip_message_markers


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("<<STATIC>>rules<<DYNAMIC>>question", ("rules", "question")),
        ("rules<<DYNAMIC>>question", ("rules", "question")),
        ("<<STATIC>>\nrules\n<<DYNAMIC>>\nquestion", ("rules\n", "question")),
        ("  <<STATIC>>all static", ("all static", "")),
        ("no markers", None),
        ("a<<DYNAMIC>>b<<DYNAMIC>>c", ("a", "bc")),
    ],
)
def test_split(text: str, parts: tuple[str, str] | None) -> None:
    assert split_markers(text) == parts


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("<<STATIC>>\nA\n<<DYNAMIC>>\nB", "A\nB"),
        ("Hi<<DYNAMIC>> there", "Hi there"),
        ("nothing", "nothing"),
    ],
)
def test_strip(text: str, plain: str) -> None:
    assert strip_markers(text) == plain


def test_messages_are_copied_not_changed() -> None:
    original = HumanMessage(content=[{"type": "text", "text": "<<STATIC>>a<<DYNAMIC>>b"}, "c<<DYNAMIC>>"])
    untouched = SystemMessage("plain")
    stripped = strip_message_markers([untouched, original])
    assert stripped[0] is untouched
    assert stripped[1].content == [{"type": "text", "text": "ab"}, "c"]
    assert original.content[0] == {"type": "text", "text": "<<STATIC>>a<<DYNAMIC>>b"}


def test_split_message_with_blocks() -> None:
    message = HumanMessage(content=["intro<<STATIC>>", {"type": "text", "text": "doc<<DYNAMIC>>ask"}, "more"])
    parts = split_message(message)
    assert parts is not None
    static, dynamic = parts
    assert static is not None and dynamic is not None
    assert static.content == ["intro", {"type": "text", "text": "doc"}]
    assert dynamic.content == [{"type": "text", "text": "ask"}, "more"]


def test_static_prefix_for_gemini() -> None:
    system = SystemMessage("rules")
    assert static_prefix([system, HumanMessage("q")]) == ([system], [HumanMessage("q")])
    static, rest = static_prefix([system, HumanMessage("<<STATIC>>doc<<DYNAMIC>>q"), HumanMessage("r")])
    assert [m.content for m in static] == ["rules", "doc"]
    assert [m.content for m in rest] == ["q", "r"]
    assert static_prefix([HumanMessage("q")]) == ([], [HumanMessage("q")])
