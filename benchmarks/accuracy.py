"""Accuracy of the verdict on every labelled real recording (tests/fixtures/labels.toml).

    python benchmarks/accuracy.py [--readme]

Runs `rerank-doctor check --from CASE --json` on each case (the shared H200 captures are unpacked to a
temporary folder first) and prints, per case, the expected label (from evidence that rerank-doctor did
not produce), the verdict, and any warning on a healthy case; then the confusion matrix, the accuracy
and the false warnings. `--baseline REV` adds the reference, measured in the same run on the same cases:
the `diagnose` package of git revision REV (e.g. the commit before a change to rules or derivation),
run the same way in a subprocess. Target: every case right, 0 warnings on healthy cases.

`--readme` prints the Markdown table for tests/fixtures/README.md instead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diagnose.cli import main as cli  # noqa: E402

LABELS = REPO / "tests" / "fixtures" / "labels.toml"
SHARED = REPO.parent / "shared" / "captures"


@dataclass(frozen=True)
class Case:
    path: str
    label: str
    evidence: str
    findings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        p = self.path.removeprefix("shared:")
        for suffix in ("/bundle", ".tar.gz"):
            p = p.removesuffix(suffix)
        return p.rsplit("/", 1)[-1]


def load_cases(path: Path = LABELS) -> list[Case]:
    data = tomllib.loads(path.read_text())
    return [Case(c["path"], c["label"], c["evidence"], tuple(c.get("findings", ()))) for c in data["case"]]


def resolve(case: Case, scratch: Path) -> Path | None:
    """The bundle folder of a case; None when a shared capture is not here (no ../shared)."""
    if not case.path.startswith("shared:"):
        return REPO / case.path
    archive = SHARED / case.path.removeprefix("shared:")
    if not archive.is_file():
        return None
    with tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
    return scratch / archive.name.removesuffix(".tar.gz")


def check_json(bundle: Path) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = cli(["check", "--from", str(bundle), "--json", "--fail-on", "critical"])
    return status, json.loads(out.getvalue()) if out.getvalue().strip() else {}


def baseline_label(package_root: Path, bundle: Path) -> str:
    """The verdict of another revision's `diagnose` package (unpacked at package_root) on one case."""
    result = subprocess.run(
        [sys.executable, "-m", "diagnose", "check", "--from", str(bundle), "--json", "--fail-on", "critical"],
        capture_output=True,
        text=True,
        cwd=package_root,
        env={"PYTHONPATH": str(package_root), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    try:
        return str(json.loads(result.stdout)["verdict"]["label"])
    except (ValueError, KeyError, TypeError):
        return f"exit {result.returncode}"


def unpack_revision(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "diagnose"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readme", action="store_true", help="print the README table and exit")
    parser.add_argument("--baseline", metavar="REV", help="also run git revision REV's diagnose package")
    args = parser.parse_args()
    cases = load_cases()
    if args.readme:
        print("| case | label | evidence (not from rerank-doctor) |")
        print("|---|---|---|")
        for c in cases:
            print(f"| `{c.path}` | {c.label} | {c.evidence} |")
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory() as old:
        old_root = unpack_revision(args.baseline, Path(old)) if args.baseline else None
        for case in cases:
            bundle = resolve(case, Path(scratch))
            if bundle is None:
                print(f"{case.name}: skipped ({case.path} is not here)")
                continue
            status, report = check_json(bundle)
            got = report.get("verdict", {}).get("label", f"exit {status}")
            warnings = [
                f["rule_id"] for f in report.get("findings", []) if f["severity"] in ("warning", "critical")
            ]
            reported = {f["rule_id"] for f in report.get("findings", [])}
            missing = [r for r in case.findings if r not in reported]
            base = baseline_label(old_root, bundle) if old_root is not None else "-"
            rows.append((case, got, base, warnings, missing))

    seen = {c.label for c, *_ in rows} | {g for _, g, *_ in rows}
    labels = sorted(seen | ({o for _, _, o, *_ in rows} if args.baseline else set()))
    width = max(len(c.name) for c, *_ in rows)
    print(f"{'case':{width}}  {'expected':12} {'verdict':12} {'baseline':12} notes")
    for case, got, old, warnings, missing in rows:
        notes = []
        if got != case.label:
            notes.append("WRONG")
        if case.label == "healthy" and warnings:
            notes.append(f"false warnings: {', '.join(warnings)}")
        if missing:
            notes.append(f"missing findings: {', '.join(missing)}")
        print(f"{case.name:{width}}  {case.label:12} {got:12} {old:12} {'; '.join(notes)}")

    def matrix(pick: int, title: str) -> int:
        print(f"\nconfusion matrix, {title} (rows: expected, columns: verdict)")
        print(" " * 13 + " ".join(f"{label[:12]:>12}" for label in labels))
        for expected in labels:
            counts = [sum(1 for r in rows if r[0].label == expected and r[pick] == got) for got in labels]
            if any(counts):
                print(f"{expected[:12]:>12} " + " ".join(f"{n:>12}" for n in counts))
        return sum(1 for r in rows if r[0].label == r[pick])

    right = matrix(1, "this revision")
    old_right = matrix(2, f"baseline {args.baseline}") if args.baseline else 0
    false_warnings = sum(len(r[3]) for r in rows if r[0].label == "healthy")
    missing_findings = sum(len(r[4]) for r in rows)
    n = len(rows)
    versus = (
        f" (baseline {args.baseline}: {old_right}/{n} = {old_right / n:.0%}, "
        f"ratio {right / max(old_right, 1):.2f})"
        if args.baseline
        else ""
    )
    print(
        f"\naccuracy: {right}/{n} = {right / n:.0%}{versus}; false warnings on healthy cases: "
        f"{false_warnings}; expected findings missing: {missing_findings}"
    )
    return 0 if right == n and false_warnings == 0 and missing_findings == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
