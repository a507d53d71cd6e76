"""``make audit``: pip-audit looks the locked releases (requirements/lock.txt) up in advisory databases.

pip-audit does the lookup; this script only sums its JSON report up, because pip-audit says "Dependency not
found on PyPI" for every package when its advisory service cannot be reached (a network that serves PyPI's
package index but not its JSON API, or no network), which reads like a clean bill or a broken lock. Here
each known vulnerability is listed with the releases that fix it, then a count, and a run that could not
look releases up says so and names the service. Every pin of the universal lock is looked up, not only those
of this machine's platform and Python (pip-audit would drop the others by their markers): the pins go to
pip-audit without markers, one file per pin of a package that the lock pins twice. Exit status: 0 when every
release was looked up and none has a known vulnerability, 1 otherwise. Extra arguments go to pip-audit
(``python scripts/audit.py --vulnerability-service osv``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import Any

from check_lock import LOCK, Pin, read_lock


def requirement_files(pins: list[Pin]) -> list[str]:
    """The pins as requirement files without markers, none naming a package twice (pip-audit refuses
    that): the first holds every package, each next one the packages pinned once more."""
    files: list[list[str]] = []
    seen: dict[str, int] = {}
    for pin in pins:
        index = seen.get(pin.name, 0)
        seen[pin.name] = index + 1
        if index == len(files):
            files.append([])
        hashes = " ".join(f"--hash={h}" for h in pin.hashes)
        files[index].append(f"{pin.name}=={pin.version} {hashes}\n")
    return ["".join(lines) for lines in files]


def run_pip_audit(requirements: str, extra: list[str]) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report of one requirement file (None when it gave none) and its stderr."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as file:
        file.write(requirements)
        file.flush()
        command = [sys.executable, "-m", "pip_audit", "--requirement", file.name, "--require-hashes"]
        command += ["--disable-pip", "--format", "json", "--progress-spinner", "off", *extra]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return None, done.stderr
    return report if isinstance(report, dict) else None, done.stderr


def summarize(report: dict[str, Any], service: str) -> tuple[list[str], bool]:
    """The lines to print, and whether the lock passed (every release looked up, nothing known)."""
    dependencies = report.get("dependencies") or []
    lines: list[str] = []
    found = 0
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dependency in dependencies:
        for vuln in dependency.get("vulns") or []:
            found += 1
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            aliases = ", ".join(vuln.get("aliases") or [])
            name = f"{vuln.get('id')}" + (f" ({aliases})" if aliases else "")
            lines.append(f"{dependency['name']} {dependency.get('version')}: {name}, fixed in {fixed}")
    audited = len(dependencies) - len(skipped)
    lines.append(f"{audited} of {len(dependencies)} locked releases looked up: {found} known vulnerabilities")
    if skipped and audited == 0:
        lines.append(
            f"Nothing could be looked up: the advisory service ({service}) did not answer for any release "
            "(pip-audit calls that 'not found on PyPI'). Run `make audit` where it is reachable, or choose "
            "another service: `python scripts/audit.py --vulnerability-service osv`."
        )
    elif skipped:
        lines.append("Not looked up: " + ", ".join(str(d["name"]) for d in skipped))
    return lines, found == 0 and not skipped


def main(argv: list[str]) -> int:
    osv = any("osv" in arg for arg in argv)
    service = "osv (api.osv.dev)" if osv else "pypi (pypi.org/pypi/<name>/<version>/json)"
    dependencies: list[dict[str, Any]] = []
    for requirements in requirement_files(read_lock(LOCK.read_text(encoding="utf-8"))):
        report, errors = run_pip_audit(requirements, argv)
        if report is None:
            print(f"pip-audit gave no report; its last words:\n{errors.strip()[-2000:]}", file=sys.stderr)
            return 1
        dependencies.extend(report.get("dependencies") or [])
    lines, passed = summarize({"dependencies": dependencies}, service)
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
