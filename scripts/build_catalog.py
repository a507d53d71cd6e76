#!/usr/bin/env python3
"""Build ``src/modelforge/data/models_dev.json.gz``, the offline catalogue bundled with ModelForge.

Reads a models.dev ``api.json`` document (a file, or the live URL), resolves ``base_model`` inheritance,
keeps only the fields ModelForge uses (see ``modelforge.catalog._data.MODEL_FIELDS``), records the snapshot
date and writes compact, key-sorted JSON, gzip-compressed with a fixed mtime so a rebuild from the same input
gives the same bytes.

    .venv/bin/python scripts/build_catalog.py                       # from ../shared/data/models-dev.json
    .venv/bin/python scripts/build_catalog.py --source snapshot.json --date 2026-07-02
    .venv/bin/python scripts/build_catalog.py --source https://models.dev/api.json   # date: today (UTC)
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from modelforge.catalog._data import (  # noqa: E402
    MODELS_DEV_URL,
    dump_envelope,
    is_api_json,
    make_envelope,
    parse_envelope,
    trim,
)

DEFAULT_SOURCE = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "models-dev.json")
DEFAULT_SNAPSHOT_DATE = "2026-07-02"  # the date of DEFAULT_SOURCE (see ../shared/data/README.md)
OUTPUT = ROOT / "src" / "modelforge" / "data" / "models_dev.json.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="api.json file or http(s) URL")
    parser.add_argument("--date", help="snapshot date YYYY-MM-DD (default: the bundled snapshot's or today)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    if args.source.startswith(("http://", "https://")):
        response = httpx.get(args.source, timeout=60.0, follow_redirects=True)
        response.raise_for_status()
        api = response.json()
        date = args.date or dt.datetime.now(dt.UTC).date().isoformat()
        source = args.source
    else:
        api = json.loads(Path(args.source).read_text(encoding="utf-8"))
        date = args.date or (DEFAULT_SNAPSHOT_DATE if args.source == DEFAULT_SOURCE else None)
        if date is None:
            parser.error("--date is required for a file other than the default snapshot")
        source = MODELS_DEV_URL
    dt.date.fromisoformat(date)  # reject a malformed date early
    if not is_api_json(api):
        parser.error(f"{args.source} does not look like a models.dev api.json document")

    envelope = make_envelope(trim(api), snapshot_date=date, source=source)
    data = gzip.compress(dump_envelope(envelope), compresslevel=9, mtime=0)
    parse_envelope(data)  # what we ship must read back
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    models = sum(len(p["models"]) for p in envelope["providers"].values())
    print(
        f"wrote {args.output} ({len(data):,} bytes): {len(envelope['providers'])} providers, "
        f"{models:,} models, snapshot {date}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
