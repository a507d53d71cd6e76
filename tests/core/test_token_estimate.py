"""One token estimate everywhere no tokenizer is loaded: four characters a token, rounded up; a text with
characters is at least one token, no text is none; a message adds four for its role and separators."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from modelforge._token_estimate import tokens_for_chars, tokens_in_messages, tokens_in_text
from modelforge.assistant._cost_usage import estimate_tokens as cost_estimate
from modelforge.optimizers._base import estimate_text_tokens, estimate_tokens
from modelforge.policies.admission import estimate_tokens as admission_estimate
from modelforge.streaming import TokenCounter


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (8, 2), (401, 101)])
def test_four_characters_a_token_rounded_up(chars: int, tokens: int) -> None:
    assert tokens_for_chars(chars) == tokens
    assert tokens_in_text("x" * chars) == tokens


def test_every_estimating_part_counts_a_text_the_same_way() -> None:
    text = "Why is the sky blue? " * 7  # 147 characters: 37 tokens
    messages = [SystemMessage("Be brief."), HumanMessage(text), AIMessage("")]
    assert cost_estimate(text) == estimate_text_tokens(text) == 37
    assert TokenCounter(exact=False).count(text) == 37  # the tokenizer's fallback
    expected = (3 + 4) + (37 + 4) + (0 + 4)
    assert tokens_in_messages(messages) == estimate_tokens(messages) == expected
    assert admission_estimate(messages, output_limit=100) == (expected, expected + 100)
