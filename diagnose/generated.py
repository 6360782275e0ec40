"""Files generated from code (alerts, dashboards, Kubernetes manifests): written, or checked current.

The generator scripts under alerts/ and dashboards/ call `write_or_check`; the tests run them with
`--check`, so a committed file that no longer matches its generator fails.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def write_or_check(files: Mapping[str, str], out: Path, script: str, argv: list[str]) -> int:
    """Writes each `name -> text` under `out`, or with `--check` in argv reports the stale ones (exit 1)."""
    stale = []
    out.mkdir(exist_ok=True)
    for name, text in files.items():
        path = out / name
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"{', '.join(stale)} out of date: run python {script}", file=sys.stderr)
        return 1
    return 0
