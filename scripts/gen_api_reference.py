#!/usr/bin/env python3
"""Generate ``docs/api/``: the API reference of ModelForge, in Markdown, from the docstrings.

    .venv/bin/python scripts/gen_api_reference.py             # writes docs/api/
    .venv/bin/python scripts/gen_api_reference.py --out DIR   # writes DIR instead

One page per public module (``docs/api/<dotted.module>.md``) plus ``index.md``. A page holds the module
docstring, then every public name with its signature and docstring; a class also gets its public methods and
properties. Public means listed in ``__all__`` (or in the lazy-export table of a package face built with
``modelforge._lazy.lazy_exports``), else not starting with ``_``. Private modules (``_x.py``), the
``modelforge.testing`` internals (its package face is public: the test servers are for users' tests too) and
the click command modules of ``modelforge.cli`` (documented in ``docs/cli.md``) get no page. A name is
documented once: on the page of the module that defines it when that module has a page, else on the closest
public module that exports it; other pages exporting it link there.

Why griffe: it reads the source statically (nothing is imported: no optional SDK is needed and no import-time
code runs) and gives signatures, docstrings and re-export targets as data. pdoc and mkdocstrings render HTML
or need an MkDocs build; the forge shows plain Markdown, which this script writes itself. Signatures are
Python stubs in ``python`` blocks, formatted by ruff with the project's settings (CI's ``ruff format --check``
formats Markdown code blocks too). The output has no dates and a fixed order, so
``tests/docs/test_api_reference.py`` can check that the committed pages are current.
"""

from __future__ import annotations

import argparse
import ast
import html
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api"
PACKAGE = "modelforge"
SKIPPED = ("modelforge.testing.", "modelforge.cli.")  # public by name, but no page (see above)
SHORT_VALUE = 60  # longer constant values are shown as ``...``
Kind = griffe.ParameterKind


@dataclass
class Entry:
    """One public name of a page and the object it is bound to (None: from elsewhere, see ``note``)."""

    name: str
    obj: griffe.Object | None
    note: str = ""


# --- which pages, which names ----------------------------------------------------------------------------


def public_modules(package: griffe.Module) -> list[griffe.Module]:
    """Every module that gets a page, sorted by dotted path."""
    found = [package]
    for name, sub in package.modules.items():
        if not sub.is_alias and not name.startswith("_") and not sub.path.startswith(SKIPPED):
            found += public_modules(sub)
    return sorted(found, key=lambda m: m.path)


def lazy_table(module: griffe.Module) -> dict[str, str]:
    """The ``{name: module}`` table a package face hands to ``lazy_exports`` ({} when it has none)."""
    tree = ast.parse(Path(str(module.filepath)).read_text(encoding="utf-8"))
    tables = {
        arg.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports"
        for arg in node.args[1:2]
        if isinstance(arg, ast.Name)
    }
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id in tables:
                return dict(ast.literal_eval(node.value))
    return {}


def entries(module: griffe.Module, package: griffe.Module) -> list[Entry]:
    """The public names of ``module``: in ``__all__`` order, else in source order."""
    table = lazy_table(module)
    names = [str(name) for name in module.exports or []] or list(table)
    if not names:
        names = [n for n, m in module.members.items() if not (n.startswith("_") or m.is_alias or m.is_module)]
    found = []
    for name in names:
        if name in table:
            found.append(Entry(name, resolve(package[table[name].removeprefix(PACKAGE + ".") + "." + name])))
        elif name not in module.members:
            found.append(Entry(name, None, "Provided by the module's `__getattr__` (computed when read)."))
        elif (obj := resolve(module.members[name])) is None:
            found.append(
                Entry(name, None, f"Re-exported from `{getattr(module.members[name], 'target_path', name)}`.")
            )
        else:
            found.append(Entry(name, obj))
    return found


def resolve(member: griffe.Object | griffe.Alias) -> griffe.Object | None:
    """The object behind an import (None for a name from another package)."""
    if isinstance(member, griffe.Object):
        return member
    try:
        return member.final_target
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def homes(pages: dict[str, list[Entry]], faces: set[str]) -> dict[str, str]:
    """The page documenting each object in full, by object path (``faces``: the package pages)."""
    candidates: dict[str, list[str]] = {}
    for page, page_entries in pages.items():
        for entry in page_entries:
            if entry.obj is not None:
                candidates.setdefault(entry.obj.path, []).append(page)
    chosen = {}
    for path, where in candidates.items():
        owner = path.rpartition(".")[0]
        # The defining module; else a plain module before a package face, the closest (longest) first.
        chosen[path] = owner if owner in where else min(where, key=lambda p: (p in faces, -len(p), p))
    return chosen


# --- docstrings ------------------------------------------------------------------------------------------

_ROLE = re.compile(r":[a-z]+:`([^`]+)`")
_LITERAL = re.compile(r"(?<!`)(`{2,})(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def markdown(docstring: griffe.Docstring | str | None) -> str:
    """A docstring (light reST) as Markdown: ````x```` as ```x```, literal blocks (``::``) fenced as text.

    An indented block after a blank line is a literal block too (Markdown would show it as code anyway).
    """
    text = docstring.value if isinstance(docstring, griffe.Docstring) else docstring
    lines = (text or "").strip("\n").splitlines()
    parts: list[str] = []
    prose: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        literal = line.rstrip().endswith("::")
        if not literal and (line.strip() or not _block_follows(lines, index + 1, _indent(line) + 4)):
            prose.append(line)
            index += 1
            continue
        if literal:
            intro = line.rstrip()[:-2].rstrip()
            prose.append(intro + ":" if intro else "")
        base = _indent(line) if literal else 0
        index += 1
        block: list[str] = []
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > base):
            block.append(lines[index])
            index += 1
        parts.append(_inline("\n".join(prose)))
        parts.append("```text\n" + textwrap.dedent("\n".join(block)).strip("\n") + "\n```")
        prose = []
    parts.append(_inline("\n".join(prose)))
    return "\n\n".join(part.strip("\n") for part in parts if part.strip())


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_follows(lines: list[str], start: int, indent: int) -> bool:
    """Whether the next non-blank line from ``start`` is indented by ``indent`` or more."""
    while start < len(lines) and not lines[start].strip():
        start += 1
    return start < len(lines) and _indent(lines[start]) >= indent


def _inline(text: str) -> str:
    return _LITERAL.sub(_code_span, _ROLE.sub(r"`\1`", text))


def _code_span(match: re.Match[str]) -> str:
    """reST ````x```` as Markdown ```x```; a literal holding backticks as ``<code>`` (so that no run of
    backticks starts a line and looks like a fence)."""
    text = match[2]
    return f"`{text}`" if len(match[1]) == 2 else f"<code>{html.escape(text.strip())}</code>"


def summary(obj: griffe.Object | None) -> str:
    """The first paragraph of ``obj``'s docstring, on one line (for tables)."""
    if obj is None or obj.docstring is None:
        return ""
    return markdown(obj.docstring.value.strip().split("\n\n")[0]).replace("\n", " ").replace("|", "\\|")


# --- signatures ------------------------------------------------------------------------------------------


def parameters(function: griffe.Function) -> str:
    kinds = [p.kind for p in function.parameters]
    parts: list[str] = []
    for position, param in enumerate(function.parameters):
        before = kinds[position - 1] if position else None
        after = kinds[position + 1] if position + 1 < len(kinds) else None
        if (
            param.kind is Kind.keyword_only
            and before is not Kind.keyword_only
            and Kind.var_positional not in kinds
        ):
            parts.append("*")
        star = {Kind.var_positional: "*", Kind.var_keyword: "**"}.get(param.kind, "")
        text = star + param.name
        if param.annotation is not None:
            text += f": {param.annotation}"
        if param.default is not None and not star:
            text += f" = {param.default}" if param.annotation is not None else f"={param.default}"
        parts.append(text)
        if param.kind is Kind.positional_only and after is not Kind.positional_only:
            parts.append("/")
    return ", ".join(parts)


def function_stub(function: griffe.Function, name: str, indent: str = "") -> list[str]:
    decorators = [
        f"{indent}@{label}" for label in ("classmethod", "staticmethod") if label in function.labels
    ]
    returns = f" -> {function.returns}" if function.returns is not None else ""
    keyword = "async def" if "async" in function.labels else "def"
    return [*decorators, f"{indent}{keyword} {name}({parameters(function)}){returns}: ..."]


def attribute_stub(attribute: griffe.Attribute, name: str, indent: str = "") -> str:
    text = indent + name + (f": {attribute.annotation}" if attribute.annotation is not None else "")
    value = str(attribute.value) if attribute.value is not None else None
    if value is not None:
        text += f" = {value}" if len(value) <= SHORT_VALUE and "\n" not in value else " = ..."
    elif attribute.annotation is None:
        text += " = ..."
    return text


def class_stub(cls: griffe.Class, name: str) -> list[str]:
    """``class Name(Bases):`` with its class attributes (a dataclass: its fields) and ``__init__``."""
    dataclass_ = "dataclass" in cls.labels
    body = [
        attribute_stub(member, member_name, "    ")  # type: ignore[arg-type]
        for member_name, member in cls.members.items()
        if member.is_attribute
        and not (member.is_alias or member_name.startswith("_") or "property" in member.labels)
        and ("class-attribute" in member.labels or dataclass_)
    ]
    init = cls.members.get("__init__")
    if init is not None and init.is_function and not init.is_alias and not dataclass_:
        body += function_stub(init, "__init__", "    ")  # type: ignore[arg-type]
    bases = ", ".join(str(base) for base in cls.bases)
    return [f"class {name}({bases}):" if bases else f"class {name}:", *(body or ["    ..."])]


def python(lines: list[str]) -> str:
    return "```python\n" + "\n".join(lines) + "\n```"


# --- pages -----------------------------------------------------------------------------------------------


def render_object(obj: griffe.Object, name: str) -> list[str]:
    """The heading, signature and docstring of a public name; a class's public methods and properties."""
    if obj.is_class:
        parts = [f"## class `{name}`", python(class_stub(obj, name))]  # type: ignore[arg-type]
    elif obj.is_function:
        parts = [f"## `{name}()`", python(function_stub(obj, name))]  # type: ignore[arg-type]
    elif obj.is_attribute:
        parts = [f"## `{name}`", python([attribute_stub(obj, name)])]  # type: ignore[arg-type]
    else:
        parts = [f"## `{name}`"]
    parts.append(markdown(obj.docstring))
    for member_name, member in obj.members.items() if obj.is_class else ():
        if member_name.startswith("_") or member.is_alias:
            continue
        if member.is_function:
            parts += [f"### `{name}.{member_name}()`", python(function_stub(member, member_name))]  # type: ignore[arg-type]
        elif "property" in member.labels:
            kind = "settable property" if "writable" in member.labels else "property"
            returns = f" -> {member.annotation}" if member.annotation is not None else ""  # type: ignore[union-attr]
            stub = ["@property", f"def {member_name}(self){returns}: ..."]
            parts += [f"### `{name}.{member_name}` ({kind})", python(stub)]
        else:
            continue
        parts.append(markdown(member.docstring))
    return parts


def render_page(module: griffe.Module, page_entries: list[Entry], home: dict[str, str]) -> str:
    source = Path(str(module.filepath)).relative_to(ROOT).as_posix()
    parts = [
        f"# `{module.path}`",
        f"[API reference](index.md) · source: `{source}` · generated from the docstrings: do not edit",
        markdown(module.docstring),
    ]
    here = [e for e in page_entries if e.obj is None or home[e.obj.path] == module.path]
    elsewhere = [e for e in page_entries if e not in here]
    if elsewhere:
        rows = ["| name | documented in | summary |", "|---|---|---|"]
        for entry in elsewhere:
            page = home[entry.obj.path]  # type: ignore[union-attr]
            rows.append(f"| `{entry.name}` | [`{page}`]({page}.md) | {summary(entry.obj)} |")
        parts += ["## Names documented on other pages", "\n".join(rows)]
    for entry in here:
        parts += render_object(entry.obj, entry.name) if entry.obj else [f"## `{entry.name}`", entry.note]
    return "\n\n".join(part for part in parts if part) + "\n"


def render_index(modules: list[griffe.Module]) -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `scripts/gen_api_reference.py`: do not edit these pages by hand.",
        "The guides start at [the docs index](../index.md); the command line is in [cli.md](../cli.md).",
        "",
        "| module | summary |",
        "|---|---|",
    ]
    lines += [f"| [`{m.path}`]({m.path}.md) | {summary(m)} |" for m in modules]
    return "\n".join(lines) + "\n"


def generate(out: Path) -> None:
    """Write every page into the directory ``out`` (created; it must not exist yet)."""
    package: griffe.Module = griffe.load(  # type: ignore[assignment]
        PACKAGE, search_paths=[str(ROOT / "src")], resolve_aliases=True, resolve_external=False
    )
    modules = public_modules(package)
    pages = {m.path: entries(m, package) for m in modules}
    home = homes(pages, {m.path for m in modules if m.is_init_module})
    out.mkdir(parents=True)
    (out / "index.md").write_text(render_index(modules), encoding="utf-8")
    for module in modules:
        (out / f"{module.path}.md").write_text(
            render_page(module, pages[module.path], home), encoding="utf-8"
        )
    config = ["--config", str(ROOT / "pyproject.toml")]  # the settings CI formats docs/ with
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", *config, str(out)], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the Markdown API reference (docs/api/).")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory (default: docs/api)")
    out = parser.parse_args(argv).out
    with tempfile.TemporaryDirectory() as scratch:  # write everything first: a failure leaves `out` as it was
        staged = Path(scratch) / "api"
        generate(staged)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(staged, out)
    print(f"Wrote {len(list(out.glob('*.md')))} pages to {out}")


if __name__ == "__main__":
    main()
