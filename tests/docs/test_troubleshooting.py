"""``docs/troubleshooting.md`` explains every ``error_code`` ModelForge can raise.

The codes are read from the source, not from a list kept by hand: a class's ``default_code``, every
``error_code=`` / ``problem_code=`` argument or default, and every argument given to a parameter whose name
ends in ``code`` of a function defined in the same module (``_invalid(problem, fix, "EMPTY_URL")``). A code
built with an f-string (``f"BATCH_{word.upper()}"``) must appear with its variable part written as
``<...>`` (``BATCH_<REASON>``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "troubleshooting.md"
SOURCE = ROOT / "src" / "modelforge"
_CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


def _is_code_name(name: str | None) -> bool:
    return bool(name) and (name == "code" or str(name).endswith("_code"))


def _codes_in(tree: ast.Module) -> set[str]:
    """The error codes one module can produce (constant strings, and f-string patterns as regexes)."""
    params = {
        node.name: [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    values: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(_is_code_name(getattr(t, "id", None)) for t in node.targets):
            values.append(node.value)
        elif isinstance(node, ast.AnnAssign) and _is_code_name(getattr(node.target, "id", None)):
            values += [node.value] if node.value is not None else []
        elif isinstance(node, ast.Call):
            values += [k.value for k in node.keywords if _is_code_name(k.arg)]
            names = params.get(getattr(node.func, "id", ""), [])
            values += [arg for name, arg in zip(names, node.args, strict=False) if _is_code_name(name)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            positional = [*arguments.posonlyargs, *arguments.args]
            with_default = positional[len(positional) - len(arguments.defaults) :]
            defaults = list(zip(with_default, arguments.defaults, strict=True))
            keyword = zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
            defaults += [(a, d) for a, d in keyword if d is not None]
            values += [d for a, d in defaults if _is_code_name(a.arg)]
    codes = set()
    for value in values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str) and _CODE.match(value.value):
            codes.add(value.value)
        elif isinstance(value, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "<" for v in value.values]
            pattern = "".join(re.escape(str(p)) if p != "<" else "<[A-Z_]+>" for p in parts)
            if pattern.startswith(tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")):
                codes.add(pattern)
    return codes


def error_codes() -> set[str]:
    """Every error code in ``src/modelforge`` (f-string codes as regex patterns)."""
    found: set[str] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        found |= _codes_in(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_the_codes_are_found() -> None:
    codes = error_codes()
    for code in ("NO_MODEL_SELECTED", "RATE_LIMIT_EXCEEDED", "EMPTY_URL", "INVALID_JSON", "STREAM_ABORTED"):
        assert code in codes
    assert any(code.startswith("BATCH_<") for code in codes), codes


def test_every_error_code_is_explained() -> None:
    text = PAGE.read_text(encoding="utf-8")
    missing = sorted(code for code in error_codes() if not re.search(rf"(?<![A-Z_]){code}(?![A-Z_])", text))
    assert not missing, f"docs/troubleshooting.md does not explain: {', '.join(missing)}"
