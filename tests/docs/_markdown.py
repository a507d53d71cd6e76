"""The code examples of a Markdown file, as the docs tests run them.

``examples(path)`` returns the fenced blocks of a file in order, each with its language, source and the line
it starts on, and the hidden set-up that precedes it. Hidden set-up is an HTML comment right above a block
(invisible when the page renders), for what a reader's own provider would do and a test server needs to be
told, such as the answer it should give::

    <!-- docs-setup: server.script(Reply(text='{"name": "Ada", "age": 36}')) -->
    ```python
    person = provider.chat_sync("Who wrote the first program?", response_format=Person)
    ```

The set-up runs in the same namespace as the examples, with ``server`` (the running ``ProviderServer``),
``Reply``, ``Fault``, ``Disconnect``, ``ToolCall`` and ``Usage`` in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Example", "examples"]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[^\n`]*)$")
_SETUP = re.compile(r"<!--\s*docs-setup:\s*(?P<code>.*?)-->", re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One fenced block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str  # the first word of the info string, lower-cased ("" when none)
    source: str
    setup: str  # hidden set-up code from a ``docs-setup`` comment right above the block ("" when none)

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def examples(path: Path) -> list[Example]:
    """Every fenced block of ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Example] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        language = (match["info"].split() or [""])[0].lower()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        index += 1  # past the closing fence
        found.append(Example(path, start + 1, language, "\n".join(body) + "\n", _setup_above(lines, start)))
    return found


def _setup_above(lines: list[str], fence_index: int) -> str:
    """The code of a ``docs-setup`` comment ending on the non-blank line just above the fence."""
    above = fence_index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0 or not lines[above].rstrip().endswith("-->"):
        return ""
    start = above
    while start > 0 and "<!--" not in lines[start]:
        start -= 1
    match = _SETUP.search("\n".join(lines[start : above + 1]))
    return _dedent_setup(match["code"]) if match else ""


def _dedent_setup(code: str) -> str:
    import textwrap

    stripped = code.strip("\n")
    first, _, rest = stripped.partition("\n")
    return (first.strip() + "\n" + textwrap.dedent(rest)).strip() + "\n"
