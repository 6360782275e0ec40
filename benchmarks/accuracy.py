"""Accuracy of the verdict on every labelled real recording (tests/fixtures/labels.toml).

    python benchmarks/accuracy.py [--readme]

Runs `rerank-doctor check --from CASE --json` on each case (the shared H200 captures are unpacked to a
temporary folder first) and prints, per case, the expected label (from evidence that rerank-doctor did
not produce), the verdict, and any warning on a healthy case; then the confusion matrix, the accuracy
and the false warnings. The reference, measured in the same run on the same reports: the policy before
the causal verdict — the label of the worst finding, with the past-capacity symptom labelled `gpu`
whenever a GPU reading exists (the way it used to be). Target: every case right, 0 warnings on healthy.

`--readme` prints the Markdown table for tests/fixtures/README.md instead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diagnose.cli import main as cli  # noqa: E402
from diagnose.rules import RULES  # noqa: E402

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


def old_policy(report: dict) -> str:
    """The verdict before the causal model: the worst finding's label, queueing as `gpu` with a GPU."""
    rank = {"critical": 0, "warning": 1}
    order = {rule.id: i for i, rule in enumerate(RULES)}
    loud = [f for f in report.get("findings", []) if f["severity"] in rank]
    loud.sort(key=lambda f: (rank[f["severity"]], f["step"], order.get(f["rule_id"], len(order))))
    worst = loud[0] if loud else None
    if worst is None:
        return "healthy"
    if worst["rule_id"] == "queueing":
        has_gpu = report.get("evidence", {}).get("gpu_util_mean_pct") is not None
        return "gpu" if has_gpu else "cpu"
    return str(worst["label"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readme", action="store_true", help="print the README table and exit")
    args = parser.parse_args()
    cases = load_cases()
    if args.readme:
        print("| case | label | evidence (not from rerank-doctor) |")
        print("|---|---|---|")
        for c in cases:
            print(f"| `{c.path}` | {c.label} | {c.evidence} |")
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
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
            rows.append((case, got, old_policy(report) if report else got, warnings, missing))

    labels = sorted({c.label for c, *_ in rows} | {g for _, g, *_ in rows} | {o for _, _, o, *_ in rows})
    width = max(len(c.name) for c, *_ in rows)
    print(f"{'case':{width}}  {'expected':12} {'verdict':12} {'old policy':12} notes")
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

    right = matrix(1, "causal verdict")
    old_right = matrix(2, "old policy (worst finding's label)")
    false_warnings = sum(len(r[3]) for r in rows if r[0].label == "healthy")
    missing_findings = sum(len(r[4]) for r in rows)
    n = len(rows)
    print(
        f"\naccuracy: {right}/{n} = {right / n:.0%} (old policy {old_right}/{n} = {old_right / n:.0%}, "
        f"ratio {right / max(old_right, 1):.2f}); false warnings on healthy cases: {false_warnings}; "
        f"expected findings missing: {missing_findings}"
    )
    return 0 if right == n and false_warnings == 0 and missing_findings == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
