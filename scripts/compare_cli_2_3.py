#!/usr/bin/env python3
"""Run the same CLI session against model-forge-llm 2.3.0 and this checkout, in two fresh HOMEs, and diff.

For each step (config add/use/remove/show, settings, models list/info, test with a prompt, stdin,
--stream, --quiet and -o, auth status/logout, and the failures a script checks for) it compares the exit
codes, stdout and the files written under HOME. Both CLIs talk to one local test server that speaks the
OpenAI protocol (``modelforge.testing.ProviderServer``); the session points the ``openai`` provider at it
by editing ``base_url`` in config.json, as a user of either version does. Both HOMEs start the same: the
models.dev cache of a 2.3.0 user who once ran ``models list`` (written by 2.3.0's own parser from the
models.dev snapshot 3.0 bundles, ``CATALOGUE``), since neither machine reaches models.dev.

stdout is "same" when identical; "wording" when only the prose differs: the data a script reads (JSON
documents, the ``Q:``/``A:`` exchange, the answer, token counts, the providers and models named) is equal,
2.3.0's JSON keys and values all present in 3.0's (3.0 may add keys). Anything else is a difference, and
every difference must be one of ``KNOWN_DIFFERENCES`` (a 2.3.0 defect the compat page lists, or an
intentional change docs/migrating.md explains), else the script exits 1.

Then config round trips on disk: a config written by 2.3.0 used by 3.0, and one written by 3.0 used by
2.3.0 (after ``modelforge config export-legacy`` for the key), each read back by the other version.

    make .venv-2.3/.installed                        # model-forge-llm 2.3.0 in its own venv
    .venv/bin/python scripts/compare_cli_2_3.py      # the summary; exit 1 on an unexplained difference
    .venv/bin/python scripts/compare_cli_2_3.py --details   # also each step's stdout side by side
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from modelforge.testing import ProviderServer  # noqa: E402

LEGACY_VENV = ROOT / ".venv-2.3"
CURRENT_VENV = ROOT / ".venv"
# The openai part of the models.dev snapshot (2026-07-02) that src/modelforge/data/ bundles, as models.dev
# serves it (api.json shape): what 2.3.0 would have fetched and cached.
CATALOGUE = ROOT / "tests" / "compat" / "data" / "models-dev-openai.json"
KEY = "sk-" + "compare0session0key0" * 2 + "abcdefgh"  # 2.3.0 refuses sk-proj- keys (a listed defect)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEGACY_LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - modelforge\S* - [A-Z]+ - .*\n?", re.MULTILINE
)
IDENTIFIERS = ("openai", "ollama", "mini", "big", "llama", "gpt-4o-mini", "gpt-4o", "llama3.2")
COUNTS = re.compile(r"^\s*(Prompt tokens|Completion tokens|Total tokens):\s*([\d,]+)", re.MULTILINE)

# Each difference the session may show, with its reason (docs/migrating.md lists them too).
KNOWN_DIFFERENCES: dict[str, str] = {
    "credentials": "defect fixed (compat page: secrets in the config file): 2.3.0 writes keys into "
    "config.json (auth_data, mode 0644); 3.0 keeps them in credentials.json (0600)",
    "lock files": "defect fixed (compat page: non-atomic writes): 3.0 writes config.json and "
    "credentials.json atomically under a lock (the empty *.lock files), so concurrent writers lose nothing",
    "2.3.0 log lines": "defect fixed (compat page: a logging handler installed at import): 2.3.0 printed its "
    "log records on stdout, mixed with the output",
    "stats": "3.0 feature: performance counters in ~/.cache/model-forge/stats.sqlite3 for `modelforge stats` "
    "(`modelforge settings stats off` or MODELFORGE_STATS=0 turns them off)",
    "local model": "3.0 feature (the project's main job runs offline): with no provider configured, "
    "`modelforge test` answers from the bundled local model; 2.3.0 failed with 'No model selected'",
    "estimated tokens": "2.3.0 did not ask for usage in a stream and printed its own estimate; 3.0 asks "
    "(stream_options.include_usage) and prints the counts the server reported",
    "catalogue inheritance": "models.dev entries that inherit from another (`base_model`): 3.0 fills in the "
    "inherited fields (kind, context size, name); 2.3.0 showed the entry's own fields only",
    "auth status ollama": "defect fixed: 2.3.0 reported a provider that needs no credentials (ollama, no "
    "auth strategy) as missing them and told the user to log in; 3.0 says none are needed",
    "remove credentials": "defect fixed: `config remove` of one model deleted the provider's key although "
    "its other models still need it (and kept it when the last model went); 3.0 deletes it with the last "
    "model, unless --keep-credentials",
}
IGNORED_FILES: dict[str, str] = {
    ".config/model-forge/credentials.json": "credentials",
    ".config/model-forge/credentials.json.lock": "lock files",
    ".config/model-forge/config.json.lock": "lock files",
    ".cache/model-forge/stats.sqlite3": "stats",
    ".cache/model-forge/local-model.log": "local model",
}


# --- one CLI in one HOME ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    changed: dict[str, str]  # path under HOME -> "added" / "changed" / "removed"
    log_lines: int = 0  # log records printed on stdout (2.3.0), taken out of ``stdout``


@dataclass
class Home:
    """One version's CLI and its own fresh HOME (with a project folder as the working directory)."""

    label: str
    cli: Path
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / ".config" / "model-forge" / "config.json"

    @property
    def cwd(self) -> Path:
        return self.root / "project"

    def env(self) -> dict[str, str]:
        keep = {"PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"}
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            HOME=str(self.root),
            TERM="dumb",
            COLUMNS="120",
            PYTHONIOENCODING="utf-8",
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",  # a headless machine: no OS keyring
        )
        return env

    def files(self) -> dict[str, str]:
        digests: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digests[str(path.relative_to(self.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return digests

    def python(self, code: str) -> None:
        """Run ``code`` with this version's own Python, in this HOME."""
        python = self.cli.parent / "python"
        subprocess.run([str(python), "-c", code], cwd=self.cwd, env=self.env(), check=True, timeout=120)

    def run(self, args: Sequence[str], stdin: str | None = None) -> Outcome:
        before = self.files()
        proc = subprocess.run(
            [str(self.cli), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env(),
            timeout=120,
            check=False,
        )
        after = self.files()
        changed = {p: "added" for p in after.keys() - before.keys()}
        changed |= {p: "removed" for p in before.keys() - after.keys()}
        changed |= {p: "changed" for p in after.keys() & before.keys() if after[p] != before[p]}
        stdout = ANSI.sub("", proc.stdout)
        logs = LEGACY_LOG_LINE.findall(stdout)
        return Outcome(
            proc.returncode, LEGACY_LOG_LINE.sub("", stdout), ANSI.sub("", proc.stderr), changed, len(logs)
        )


def make_home(label: str, cli: Path, parent: Path, legacy_python: Path) -> Home:
    home = Home(label, cli, parent / f"home-{label}")
    home.cwd.mkdir(parents=True)
    seed_models_cache(home, legacy_python)
    return home


SEED = """
import json, sys
from modelforge.modelsdev import ModelsDevClient
client = ModelsDevClient()
data = json.loads(open(sys.argv[1], encoding="utf-8").read())
models = client._parse_model_data(data, "openai")
client._save_to_cache(client._get_cache_path("models", "openai"), {"data": models})
info = dict(data["openai"]["models"]["gpt-4o-mini"], provider="openai", id="gpt-4o-mini")
client._save_to_cache(client._get_cache_path("model_info", "openai", "gpt-4o-mini"), info)
"""


def seed_models_cache(home: Home, legacy_python: Path) -> None:
    """The models.dev cache 2.3.0 writes after fetching the catalogue, written by 2.3.0's own code."""
    subprocess.run(
        [str(legacy_python), "-c", SEED, str(CATALOGUE)],
        env=home.env(),
        cwd=home.cwd,
        check=True,
        timeout=120,
    )


# --- the session ---------------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    args: list[str] = field(default_factory=list)
    stdin: str | None = None
    edit: Callable[[Home, ProviderServer], None] | None = None
    known: dict[str, str] = field(default_factory=dict)  # "exit"/"stdout"/"files" -> KNOWN_DIFFERENCES key
    bare: bool = False  # stdout is data alone (--quiet): any change of it is a change of data


def point_openai_at(home: Home, server: ProviderServer) -> None:
    data = json.loads(home.config_file.read_text(encoding="utf-8"))
    data["providers"]["openai"]["base_url"] = server.openai_base_url
    home.config_file.write_text(json.dumps(data, indent=4), encoding="utf-8")


def write_prompt_file(home: Home, _server: ProviderServer) -> None:
    (home.cwd / "prompt.txt").write_text("Hello from a file", encoding="utf-8")


ADD_OPENAI = ["config", "add", "--provider", "openai", "--model", "mini", "--api-model-name", "gpt-4o-mini"]
SESSION: list[Step] = [
    Step("config show, nothing configured", ["config", "show"]),
    Step("config add openai with --api-key", [*ADD_OPENAI, "--api-key", KEY]),
    Step("edit config.json: openai base_url -> test server", edit=point_openai_at),
    Step(
        "config add a second openai model",
        ["config", "add", "--provider", "openai", "--model", "big", "--api-model-name", "gpt-4o"],
    ),
    Step(
        "config add ollama",
        ["config", "add", "--provider", "ollama", "--model", "llama", "--api-model-name", "llama3.2"],
    ),
    Step("config use openai/mini", ["config", "use", "--provider", "openai", "--model", "mini"]),
    Step("config use an unknown model", ["config", "use", "--provider", "openai", "--model", "nope"]),
    Step("config show", ["config", "show"]),
    Step("settings show", ["settings", "show"]),
    Step("settings telemetry off", ["settings", "telemetry", "off"]),
    Step("settings telemetry status", ["settings", "telemetry", "status"]),
    Step("settings telemetry on", ["settings", "telemetry", "on"]),
    Step(
        "models list --provider openai --format json",
        ["models", "list", "--provider", "openai", "--format", "json"],
    ),
    Step("models list --provider openai", ["models", "list", "--provider", "openai"]),
    Step(
        "models info openai gpt-4o-mini", ["models", "info", "--provider", "openai", "--model", "gpt-4o-mini"]
    ),
    Step("test --prompt", ["test", "--prompt", "Hello"]),
    Step("test, prompt on stdin", ["test"], stdin="Hello from stdin\n"),
    Step("test --stream", ["test", "--prompt", "Hello", "--stream"]),
    Step("test --quiet", ["test", "--prompt", "Hello", "--quiet"], bare=True),
    Step("test --stream --quiet", ["test", "--prompt", "Hello", "--stream", "--quiet"], bare=True),
    Step("write prompt.txt", edit=write_prompt_file),
    Step("test -i prompt.txt -o answer.txt", ["test", "-i", "prompt.txt", "-o", "answer.txt"]),
    Step("test --no-telemetry", ["test", "--prompt", "Hello", "--no-telemetry"]),
    Step("test, empty prompt on stdin", ["test"], stdin=""),
    Step("test --prompt ''", ["test", "--prompt", ""]),
    Step("test -i missing.txt", ["test", "-i", "missing.txt"]),
    Step("test --quiet --verbose", ["test", "--prompt", "Hello", "--quiet", "--verbose"]),
    Step("test -p and -i together", ["test", "-p", "Hello", "-i", "prompt.txt"]),
    Step("settings telemetry maybe", ["settings", "telemetry", "maybe"]),
    Step("config remove, unknown provider", ["config", "remove", "--provider", "nope", "--model", "x"]),
    Step("config remove, unknown model", ["config", "remove", "--provider", "openai", "--model", "nope"]),
    Step("config add, no --model", ["config", "add", "--provider", "openai"]),
    Step("auth status --provider unknown", ["auth", "status", "--provider", "nope"]),
    Step("auth status", ["auth", "status"], known={"stdout": "auth status ollama"}),
    Step("auth status --provider openai", ["auth", "status", "--provider", "openai"]),
    Step("auth logout --provider unknown", ["auth", "logout", "--provider", "nope"]),
    Step("auth logout --provider openai", ["auth", "logout", "--provider", "openai"]),
    Step("auth status --provider openai, logged out", ["auth", "status", "--provider", "openai"]),
    Step(
        "auth login --provider openai --api-key", ["auth", "login", "--provider", "openai", "--api-key", KEY]
    ),
    Step(
        "config remove openai/big (openai/mini stays)",
        ["config", "remove", "--provider", "openai", "--model", "big"],
        known={"files": "remove credentials"},
    ),
    Step(
        "auth status --provider openai, after the remove",
        ["auth", "status", "--provider", "openai"],
        known={"stdout": "remove credentials"},
    ),
    Step("auth logout --all-providers", ["auth", "logout", "--all-providers"]),
    Step("config remove ollama/llama", ["config", "remove", "--provider", "ollama", "--model", "llama"]),
    Step("config remove openai/mini", ["config", "remove", "--provider", "openai", "--model", "mini"]),
    Step("config show, all removed", ["config", "show"]),
    Step(
        "test, no provider configured",
        ["test", "--prompt", "Hello"],
        known={"exit": "local model", "stdout": "local model"},
    ),
]


# --- comparing -----------------------------------------------------------------------------------------


def json_document(text: str) -> Any:
    """The JSON document in ``text`` (from the first line that opens one to the end), or None."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("{", "[")):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    return None


def missing_from(old: Any, new: Any, where: str = "") -> list[str]:
    """What ``new`` lacks of ``old`` (2.3.0's document): every key and value, recursively. 3.0 may add
    keys, and items to a list of plain values (a capability list) after 2.3.0's."""
    if old is None:
        return []  # 2.3.0 printed no document here
    if isinstance(old, dict) and isinstance(new, dict):
        problems = []
        for key, value in old.items():
            if key not in new:
                problems.append(f"{where}.{key} missing")
            else:
                problems += missing_from(value, new[key], f"{where}.{key}")
        return problems
    if isinstance(old, list) and isinstance(new, list):
        if old and all(not isinstance(item, dict | list) for item in old):
            return [] if new[: len(old)] == old else [f"{where}: {old!r} in 2.3.0, {new!r} in 3.0"]
        if len(old) != len(new):
            return [f"{where}: {len(old)} items in 2.3.0, {len(new)} in 3.0"]
        return [
            p
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for p in missing_from(a, b, f"{where}[{i}]")
        ]
    return [] if old == new else [f"{where}: {old!r} in 2.3.0, {new!r} in 3.0"]


_CATALOGUE: dict[str, Any] = {}


def _catalogue_models() -> dict[str, Any]:
    if not _CATALOGUE:
        _CATALOGUE.update(json.loads(CATALOGUE.read_text(encoding="utf-8"))["openai"]["models"])
    return _CATALOGUE


# Which models.dev fields each key of 2.3.0's model dict is made from.
MADE_FROM = {
    "display_name": {"name"},
    "description": {"name", "reasoning", "attachment", "cost", "limit"},
    "capabilities": {"reasoning", "tool_call", "attachment", "modalities"},
    "context_length": {"limit"},
    "max_tokens": {"limit"},
    "pricing": {"cost"},
}


def model_problems(old: dict[str, Any], new: Any) -> tuple[list[str], bool]:
    """What 3.0's model dict lacks of 2.3.0's, and whether some difference is explained by models.dev's
    inheritance: a key made only from fields the entry inherits (``base_model``) and does not repeat."""
    if not isinstance(new, dict):
        return [f"[{old.get('id')}]: {new!r} in 3.0"], False
    entry = _catalogue_models().get(str(old.get("id")), {}) if old.get("provider") == "openai" else {}
    inherited = {k for k in set().union(*MADE_FROM.values()) if "base_model" in entry and k not in entry}
    problems, explained = [], False
    for key, value in old.items():
        lost = (
            missing_from(value, new.get(key), f"[{old.get('id')}].{key}")
            if key in new
            else [f"[{old.get('id')}].{key} missing"]
        )
        if lost and MADE_FROM.get(key, set()) & inherited:
            explained = True
        else:
            problems += lost
    return problems, explained


def _mentioned(words: Any, text: str) -> set[str]:
    return {w for w in words if re.search(rf"(?<![\w.-]){re.escape(w)}(?![\w-])(?!\.\w)", text)}


def _without_secrets(doc: Any) -> Any:
    """A config document without 2.3.0's ``auth_data`` (which 2.3.0's ``config show`` printed)."""
    if isinstance(doc, dict) and isinstance(doc.get("providers"), dict):
        doc = dict(
            doc,
            providers={
                name: {k: v for k, v in entry.items() if k != "auth_data"}
                if isinstance(entry, dict)
                else entry
                for name, entry in doc["providers"].items()
            },
        )
    return doc


def exchange(text: str) -> list[str]:
    """The ``Q:``/``A:`` exchange of ``modelforge test``: from ``Q:`` to the telemetry block."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Q: ")), None)
    if start is None:
        return []
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("=====")), len(lines))
    return [line.rstrip() for line in lines[start:end] if line.strip()]


AUTH_23 = {"Valid credentials found": "ok", "No valid credentials found": "missing", "Local provider": "none"}


def auth_states(stdout: str, stderr: str) -> dict[str, str]:
    """Provider -> ok / missing / none, from 2.3.0's blocks (its warnings go to stderr) or 3.0's table."""
    states: dict[str, str] = {}
    provider = None
    for line in (stdout + "\n" + stderr).splitlines():
        if m := re.search(r"Provider: (\S+)", line):
            provider = m.group(1)
        elif provider and (m := re.search(r"Status: (.+)$", line)):
            states[provider] = next((v for k, v in AUTH_23.items() if m.group(1).startswith(k)), m.group(1))
        elif m := re.match(
            r"^(\S+)\s+(?:api_key|device_flow|none)\s+(ok|missing|expired|not needed)\b", line
        ):
            states[m.group(1)] = "none" if m.group(2) == "not needed" else m.group(2)
    return states


COST = re.compile(r"Estimated Cost: \$([0-9.]+)")


def compare_stdout(old: Outcome, new: Outcome, args: Sequence[str]) -> tuple[str, list[str], set[str]]:
    """("same" | "wording" | "differs", what differs, KNOWN_DIFFERENCES keys that explain a part): the
    data a script reads from stdout must carry over; the rest is wording."""
    if old.stdout == new.stdout:
        return "same", [], set()
    known: set[str] = set()
    problems: list[str] = []
    old_doc, new_doc = json_document(old.stdout), json_document(new.stdout)
    if old_doc != _without_secrets(old_doc):
        known.add("credentials")
        old_doc = _without_secrets(old_doc)
    if isinstance(old_doc, list) and isinstance(new_doc, list) and len(old_doc) == len(new_doc):
        for item, other in zip(old_doc, new_doc, strict=True):
            lost, explained = (
                model_problems(item, other) if isinstance(item, dict) else (missing_from(item, other), False)
            )
            problems += ["JSON: " + p for p in lost]
            if explained:
                known.add("catalogue inheritance")
    elif isinstance(old_doc, dict) and "limit" in old_doc and isinstance(new_doc, dict):
        problems += ["JSON: " + p for p in model_problems(old_doc, new_doc)[0]]  # models info
    else:
        problems += ["JSON: " + p for p in missing_from(old_doc, new_doc)]
    if exchange(old.stdout) != exchange(new.stdout):
        problems.append(f"exchange: {exchange(old.stdout)!r} in 2.3.0, {exchange(new.stdout)!r} in 3.0")
    old_counts, new_counts = dict(COUNTS.findall(old.stdout)), dict(COUNTS.findall(new.stdout))
    if old_counts and "(estimated)" in old.stdout and new_counts:
        known.add("estimated tokens")
    elif old_counts and old_counts != new_counts:
        problems.append(f"token counts: {old_counts} in 2.3.0, {new_counts} in 3.0")
    old_cost, new_cost = COST.findall(old.stdout), COST.findall(new.stdout)
    if old_cost and old_cost != new_cost and "estimated tokens" not in known:
        problems.append(f"cost: {old_cost} in 2.3.0, {new_cost} in 3.0")
    if list(args[:2]) == ["auth", "status"]:
        old_states, new_states = auth_states(old.stdout, old.stderr), auth_states(new.stdout, new.stderr)
        if old_states != new_states:
            problems.append(f"credential states: {old_states} in 2.3.0, {new_states} in 3.0")
    names = (*IDENTIFIERS, *_catalogue_models())
    for words in (names, ("enabled", "disabled")):
        lost_words = _mentioned(words, old.stdout) - _mentioned(words, new.stdout)
        if lost_words:
            problems.append("not named by 3.0: " + ", ".join(sorted(lost_words)))
    return ("differs" if problems else "wording"), problems[:8], known


def credential_holders(home: Home) -> set[str]:
    """The providers with a stored key or token: ``auth_data`` in config.json (2.3.0, and files it wrote),
    or an entry of 3.0's credentials file."""
    holders: set[str] = set()
    if home.config_file.exists():
        providers = json.loads(home.config_file.read_text(encoding="utf-8")).get("providers", {})
        holders |= {
            name for name, entry in providers.items() if isinstance(entry, dict) and entry.get("auth_data")
        }
    store = home.config_file.with_name("credentials.json")
    if store.exists():
        holders |= {name for name, data in json.loads(store.read_text()).get("providers", {}).items() if data}
    return holders


def config_without_secrets(path: Path) -> Any:
    if not path.exists():
        return None
    return _without_secrets(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class FileComparison:
    verdict: str  # "same" or "differs"
    notes: list[str] = field(default_factory=list)
    known: set[str] = field(default_factory=set)  # KNOWN_DIFFERENCES keys met


def compare_files(old: Home, new: Home, old_out: Outcome, new_out: Outcome) -> FileComparison:
    """Files written: the same paths changed the same way (3.0's files of ``IGNORED_FILES`` aside),
    config.json equal with 2.3.0's ``auth_data`` taken out, the answer files byte-identical."""
    result = FileComparison("same")
    new_paths = {}
    for path, how in new_out.changed.items():
        if path in IGNORED_FILES:
            result.known.add(IGNORED_FILES[path])
        else:
            new_paths[path] = how
    old_cfg, new_cfg = config_without_secrets(old.config_file), config_without_secrets(new.config_file)
    old_paths = dict(old_out.changed)
    config = str(old.config_file.relative_to(old.root))
    only_secrets = config in old_paths and config not in new_paths and old_cfg == new_cfg
    if only_secrets and ".config/model-forge/credentials.json" in new_out.changed:
        del old_paths[config]  # 2.3.0 changed only the auth_data of config.json; 3.0 its credentials file
    elif config in old_paths and '"auth_data"' in old.config_file.read_text(encoding="utf-8"):
        result.known.add("credentials")
    if old_paths != new_paths:
        result.notes.append(f"paths: 2.3.0 {old_paths}, 3.0 {new_paths}")
    touched = {config, ".config/model-forge/credentials.json"} & (set(old_out.changed) | set(new_out.changed))
    if touched and credential_holders(old) != credential_holders(new):  # this step made them differ
        result.notes.append(
            f"credentials held for: {credential_holders(old)} in 2.3.0, {credential_holders(new)} in 3.0"
        )
    if old_cfg != new_cfg:
        result.notes.append(
            "config.json: " + "; ".join(missing_from(old_cfg, new_cfg) + missing_from(new_cfg, old_cfg))
        )
    for path in sorted(p for p in old_out.changed if p.startswith("project/") and p in new_out.changed):
        if (old.root / path).read_bytes() != (new.root / path).read_bytes():
            result.notes.append(f"{path}: content differs")
    if result.notes:
        result.verdict = "differs"
    return result


@dataclass
class StepReport:
    step: Step
    old: Outcome | None = None
    new: Outcome | None = None
    stdout: str = "-"
    files: str = "-"
    notes: list[str] = field(default_factory=list)
    known: set[str] = field(default_factory=set)  # KNOWN_DIFFERENCES keys met

    @property
    def exit_same(self) -> bool:
        return self.old is None or self.new is None or self.old.exit_code == self.new.exit_code

    def differing(self) -> list[str]:
        """The aspects that differ beyond wording: "exit", "stdout", "files"."""
        flags = {
            "exit": not self.exit_same,
            "stdout": self.stdout == "differs",
            "files": self.files == "differs",
        }
        return [aspect for aspect, differs in flags.items() if differs]

    @property
    def differs(self) -> bool:
        return bool(self.differing())

    @property
    def unexplained(self) -> list[str]:
        """Differing aspects that no known difference of this step explains."""
        return [aspect for aspect in self.differing() if aspect not in self.step.known]


def compare_step(step: Step, old: Home, new: Home, old_out: Outcome, new_out: Outcome) -> StepReport:
    report = StepReport(step, old_out, new_out)
    report.stdout, report.notes, stdout_known = compare_stdout(old_out, new_out, step.args)
    if step.bare and report.stdout != "same":
        report.stdout = "differs"
        report.notes.append(f"output: {old_out.stdout!r} in 2.3.0, {new_out.stdout!r} in 3.0")
    files = compare_files(old, new, old_out, new_out)
    report.files, report.known = files.verdict, files.known | stdout_known
    report.notes += files.notes
    if old_out.log_lines:
        report.known.add("2.3.0 log lines")
    if not report.exit_same:
        report.notes.insert(0, f"exit code {old_out.exit_code} in 2.3.0, {new_out.exit_code} in 3.0")
    report.known |= {step.known[aspect] for aspect in report.differing() if aspect in step.known}
    return report


def run_session(old: Home, new: Home, server: ProviderServer) -> list[StepReport]:
    reports = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        for step in SESSION:
            if step.edit is not None:
                step.edit(old, server)
                step.edit(new, server)
                reports.append(StepReport(step, files="edited by hand"))
                continue
            old_future = pool.submit(old.run, step.args, step.stdin)
            new_out = new.run(step.args, step.stdin)
            reports.append(compare_step(step, old, new, old_future.result(), new_out))
    return reports


# --- round trips on disk -------------------------------------------------------------------------------


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""


class Checks(list[Check]):
    """The round trips' checks, in order."""

    def expect(self, what: str, out: Outcome, *, code: int = 0, contains: str = "") -> None:
        ok = out.exit_code == code and contains in out.stdout
        detail = f"exit {out.exit_code}; stdout {out.stdout[-300:]!r}; stderr {out.stderr[-300:]!r}"
        self.append(Check(what, ok, "" if ok else detail))


ANSWER = "A: Hello from the ModelForge test server."
TOKEN_SAVE = """
from modelforge.auth import save_auth_data
token = {"access_token": "gho_" + "t" * 36, "token_type": "bearer", "expires_at": 4102444800}
save_auth_data("github_copilot", token)
"""
ASK = ["test", "-p", "Hi", "--no-telemetry"]


def first_setup(home: Home, server: ProviderServer) -> None:
    """Two providers, a key, a selection and a setting, written by ``home``'s version."""
    home.run([*ADD_OPENAI, "--api-key", KEY])
    point_openai_at(home, server)
    home.run(["config", "add", "--provider", "ollama", "--model", "llama"])
    home.run(["config", "use", "--provider", "openai", "--model", "mini"])
    home.run(["settings", "telemetry", "off"])


def later_changes(home: Home) -> None:
    """A model added and selected, a provider removed, written by ``home``'s version."""
    home.run(["config", "add", "--provider", "openai", "--model", "big", "--api-model-name", "gpt-4o"])
    home.run(["config", "use", "--provider", "openai", "--model", "big"])
    home.run(["config", "remove", "--provider", "ollama", "--model", "llama"])


def round_trips(
    legacy_cli: Path, current_cli: Path, parent: Path, legacy_python: Path, server: ProviderServer
) -> list[Check]:
    checks = Checks()

    # 2.3.0 writes, 3.0 uses and writes, 2.3.0 reads back.
    old = make_home("2.3.0-first", legacy_cli, parent, legacy_python)
    new = Home("3.0", current_cli, old.root)
    first_setup(old, server)
    checks.expect("3.0 answers from a config 2.3.0 wrote (key in auth_data)", new.run(ASK), contains=ANSWER)
    checks.expect("3.0 reads 2.3.0's settings", new.run(["settings", "telemetry", "status"]), contains="off")
    later_changes(new)
    new.run(["settings", "telemetry", "on"])
    shown = old.run(["config", "show"])
    data = json_document(shown.stdout) or {}
    read_back = (
        set(data.get("providers", {})) == {"openai"}
        and set(data["providers"]["openai"].get("models", {})) == {"mini", "big"}
        and data.get("current_model") == {"provider": "openai", "model": "big"}
        and data.get("settings", {}).get("show_telemetry") is True
    )
    checks.append(Check("2.3.0 reads 3.0's add, use, remove and settings", read_back, shown.stdout[-400:]))
    checks.expect("2.3.0 still answers after 3.0 wrote (its auth_data kept)", old.run(ASK), contains=ANSWER)

    # 3.0 writes, 2.3.0 uses after export-legacy, 2.3.0 writes, 3.0 reads back.
    new = make_home("3.0-first", current_cli, parent, legacy_python)
    old = Home("2.3.0", legacy_cli, new.root)
    first_setup(new, server)
    status = old.run(["settings", "telemetry", "status"])
    checks.expect("2.3.0 reads a config 3.0 wrote", status, contains="disabled")
    checks.expect("2.3.0 has no key before export-legacy (3.0 keeps it in the store)", old.run(ASK), code=1)
    # A device-flow token stored by 3.0 with a numeric expiry, which 2.3.0 could not parse as it is.
    new.run(["config", "add", "--provider", "github_copilot", "--model", "claude"])
    new.python(TOKEN_SAVE)
    exported = new.run(["config", "export-legacy"])
    checks.expect("modelforge config export-legacy", exported, contains="Copied the credentials of 'openai'")
    checks.expect("2.3.0 answers after export-legacy", old.run(ASK), contains=ANSWER)
    copilot = old.run(["auth", "status", "--provider", "github_copilot"])
    checks.expect("2.3.0 reads the exported device-flow token", copilot, contains="Valid credentials found")
    later_changes(old)
    checks.expect("3.0 answers through the model 2.3.0 selected", new.run(ASK), contains=ANSWER)
    checks.expect("3.0 reads 2.3.0's selection", new.run(["config", "show"]), contains='"model": "big"')
    migrated = new.run(["config", "migrate"])
    checks.expect(
        "config migrate takes the key back out", migrated, contains="Moved the credentials of 'openai'"
    )
    checks.append(Check("config.json holds no key after migrate", KEY not in new.config_file.read_text()))
    return checks


# --- report --------------------------------------------------------------------------------------------


def side_by_side(old: str, new: str) -> Iterator[str]:
    yield from difflib.unified_diff(old.splitlines(), new.splitlines(), "2.3.0", "3.0", lineterm="", n=1)


def print_report(reports: list[StepReport], checks: list[Check], *, details: bool) -> int:
    width = max(len(r.step.name) for r in reports)
    print(f"{'step':<{width}}  {'exit':<7}  {'stdout':<8}  files")
    for r in reports:
        codes = (
            "-"
            if r.old is None or r.new is None
            else f"{r.old.exit_code} {'=' if r.exit_same else '!='} {r.new.exit_code}"
        )
        print(
            f"{r.step.name:<{width}}  {codes:<7}  {r.stdout:<8}  {r.files}"
            + ("  (known: " + ", ".join(sorted(r.known)) + ")" if r.known else "")
        )
        for note in r.notes if r.differs else []:
            print(f"    {note}")
        if r.unexplained:
            print("    UNEXPLAINED: " + ", ".join(r.unexplained))
        if details and r.old is not None and r.new is not None and r.stdout != "same":
            for line in side_by_side(r.old.stdout, r.new.stdout):
                print("      " + line)
    print()
    print("Known differences met:")
    for key in sorted({k for r in reports for k in r.known}):
        print(f"  {key}: {KNOWN_DIFFERENCES[key]}")
    print()
    for check in checks:
        print(
            f"{'ok  ' if check.ok else 'FAIL'} round trip: {check.what}"
            + ("" if check.ok else f"\n    {check.detail}")
        )
    ran = [r for r in reports if r.old is not None]
    unexplained = [r for r in ran if r.unexplained]
    failed = [c for c in checks if not c.ok]
    print()
    print(
        f"{len(ran)} commands run against both: exit codes differ in {sum(not r.exit_same for r in ran)}; "
        f"stdout identical in {sum(r.stdout == 'same' for r in ran)}, differs only in wording in "
        f"{sum(r.stdout == 'wording' for r in ran)}, in data in {sum(r.stdout == 'differs' for r in ran)}; "
        f"files differ in {sum(r.files == 'differs' for r in ran)}; differences not in KNOWN_DIFFERENCES: "
        f"{len(unexplained)}; round trips on disk: {len(checks) - len(failed)}/{len(checks)} ok"
    )
    return 1 if unexplained or failed else 0


def compare(legacy_venv: Path, current_venv: Path, workdir: Path) -> tuple[list[StepReport], list[Check]]:
    legacy_cli, current_cli = legacy_venv / "bin" / "modelforge", current_venv / "bin" / "modelforge"
    legacy_python = legacy_venv / "bin" / "python"
    for path in (legacy_cli, current_cli):
        if not path.exists():
            raise SystemExit(f"{path} not found: run `make .venv-2.3/.installed` and `make install` first")
    with ProviderServer() as server, ThreadPoolExecutor(max_workers=1) as pool:
        # The round trips use HOMEs of their own: they run beside the session (2.3.0 starts slowly).
        trips = pool.submit(round_trips, legacy_cli, current_cli, workdir, legacy_python, server)
        old = make_home("2.3.0", legacy_cli, workdir, legacy_python)
        new = make_home("3.0", current_cli, workdir, legacy_python)
        reports = run_session(old, new, server)
        checks = trips.result()
    return reports, checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--legacy-venv", type=Path, default=LEGACY_VENV, help="venv with model-forge-llm 2.3.0"
    )
    parser.add_argument("--current-venv", type=Path, default=CURRENT_VENV, help="venv with this checkout")
    parser.add_argument("--details", action="store_true", help="print each step's stdout diff")
    parser.add_argument("--keep", action="store_true", help="keep the two HOMEs (their path is printed)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="mf-compare-"))
    try:
        reports, checks = compare(args.legacy_venv, args.current_venv, workdir)
        return print_report(reports, checks, details=args.details)
    finally:
        if args.keep:
            print(f"HOMEs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
