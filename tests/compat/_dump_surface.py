"""Print the public surface of the installed ``modelforge`` as JSON: names, signatures, exception classes
(bases, ``error_code`` and ``details`` keys of an instance) and the CLI's commands and options.

Run by tests/compat/test_compat_signatures.py with both interpreters, model-forge-llm 2.3.0's (``.venv-2.3``)
and this checkout's, so the two surfaces are read the same way. Standard library and ``modelforge`` only:
it must run in 2.3.0's venv. The modules are those of 2.3.0 that the compat page lists.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from typing import Any

MODULES = (
    "modelforge",
    "modelforge.auth",
    "modelforge.config",
    "modelforge.enhanced_llm",
    "modelforge.exceptions",
    "modelforge.logging_config",
    "modelforge.modelsdev",
    "modelforge.registry",
    "modelforge.retry",
    "modelforge.streaming",
    "modelforge.telemetry",
    "modelforge.validation",
    "modelforge.wizard",
)


def _default(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return "<required>"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"<{type(value).__name__}>"


def signature(obj: Any) -> list[list[Any]] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, _default(p.default)] for p in sig.parameters.values() if p.name != "self"]


def _ours(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "") or "").startswith("modelforge")


def members(cls: type) -> dict[str, Any]:
    """Public methods and properties the class (or a modelforge base) defines, with their signatures."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not _ours(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(value, property):
                found[name] = "property"
            elif isinstance(value, staticmethod | classmethod):
                found[name] = signature(value.__func__)
            elif inspect.isfunction(value):
                found[name] = signature(value)
    return found


def _placeholder(param: inspect.Parameter) -> Any:
    text = str(param.annotation)
    if "float" in text or "int" in text:
        return 1
    if "list" in text:
        return ["x"]
    return "x"


def exception_facts(cls: type[BaseException]) -> dict[str, Any]:
    """Bases, and the ``error_code`` and ``details`` keys of an instance built from placeholders."""
    facts: dict[str, Any] = {"bases": [c.__name__ for c in cls.__mro__[1:] if c is not object]}
    try:
        params = inspect.signature(cls).parameters.values()
        args = [_placeholder(p) for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        err = cls(*args)
    except Exception as problem:  # reported, not raised: the comparison names it
        facts["built"] = f"{type(problem).__name__}: {problem}"
        return facts
    facts["error_code"] = getattr(err, "error_code", None)
    facts["details"] = sorted(getattr(err, "details", None) or {})
    return facts


# Names a 2.3.0 module defines only for itself: typing's flag, a type variable, a re-imported timezone.
NOT_API = frozenset({"TYPE_CHECKING", "F", "T", "UTC"})


def module_surface(name: str, wanted: list[str] | None = None) -> dict[str, Any]:
    """The names ``name`` defines itself (not what it imports from another module), or ``wanted`` ones."""
    module = importlib.import_module(name)
    names = wanted if wanted is not None else [n for n in dir(module) if not n.startswith("_")]
    surface: dict[str, Any] = {}
    for attr in names:
        if not hasattr(module, attr):
            continue
        obj = getattr(module, attr)
        # The package's own names are its re-exports (ModelForgeRegistry...); a module's, its definitions.
        own = getattr(obj, "__module__", name) == name or wanted is not None or name == "modelforge"
        if inspect.isclass(obj) and _ours(obj) and own:
            entry: dict[str, Any] = {
                "kind": "class",
                "init": signature(obj),
                "members": members(obj),
                "attributes": sorted(a for a in dir(obj) if not a.startswith("__")),
            }
            if issubclass(obj, BaseException):
                entry.update(exception_facts(obj))
            surface[attr] = entry
        elif callable(obj) and not inspect.isclass(obj) and _ours(obj) and own:
            surface[attr] = {"kind": "function", "signature": signature(obj)}
        elif not inspect.ismodule(obj) and not callable(obj) and attr.isupper() and attr not in NOT_API:
            surface[attr] = {"kind": "constant"}
    return surface


def cli_surface() -> dict[str, Any]:
    import click

    from modelforge.cli import cli

    commands: dict[str, Any] = {}

    def walk(command: click.Command, path: str) -> None:
        options = {}
        for param in command.params:
            options[param.name or ""] = {
                "opts": sorted(param.opts),
                "flag": bool(getattr(param, "is_flag", False)),
                "multiple": bool(param.multiple),
                "required": bool(param.required),
                "default": _default(param.default if param.default is not None else None),
                "choices": sorted(getattr(param.type, "choices", []) or []),
            }
        commands[path] = options
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                walk(sub, f"{path} {sub_name}".strip())

    walk(cli, "")
    return commands


def main() -> None:
    """With no input, every module's own names; given another dump on stdin (``-``), those names."""
    wanted = json.load(sys.stdin)["modules"] if sys.argv[1:] == ["-"] else {}
    modules = {name: module_surface(name, sorted(wanted[name]) if wanted else None) for name in MODULES}
    json.dump({"modules": modules, "cli": cli_surface()}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
