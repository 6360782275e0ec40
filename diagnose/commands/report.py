"""`rerank-doctor report BUNDLE --html FILE`: the diagnosis of a saved bundle as one HTML file.

Pipeline: read the bundle -> diagnose.pipeline.diagnose -> the window's series -> diagnose.render.html.
`check --html FILE` writes the same file through `write_html` below, live or from a bundle.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diagnose.derive.series import WindowSeries
    from diagnose.progress import StepReporter
    from diagnose.readings import Bundle
    from diagnose.report import Report
    from diagnose.thresholds import Thresholds

HELP = "write the diagnosis of a bundle as one self-contained HTML file with the window's charts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bundle", type=Path, metavar="BUNDLE", help="a bundle folder from `rerank-doctor collect`"
    )
    parser.add_argument(
        "--html", type=Path, metavar="FILE", required=True, help="the HTML file to write (opens offline)"
    )
    parser.add_argument(
        "--thresholds", type=Path, metavar="FILE", help="TOML file overriding rule thresholds"
    )


def run(args: argparse.Namespace) -> int:
    from diagnose.bundle import read_bundle
    from diagnose.commands.output import bundle_progress
    from diagnose.exit_status import ExitStatus
    from diagnose.pipeline import diagnose
    from diagnose.thresholds import load

    thresholds = load(args.thresholds)
    with bundle_progress(args.bundle, quiet=False) as progress:
        bundle = read_bundle(args.bundle, progress)
        report = diagnose(bundle, thresholds, source=str(args.bundle), progress=progress)
        write_html(args.html, report, bundle, thresholds, progress)
    return int(ExitStatus.OK)


def write_html(
    path: Path,
    report: Report,
    bundle: Bundle,
    thresholds: Thresholds | None,
    progress: StepReporter | None = None,
    *,
    series: WindowSeries | None = None,
    quiet: bool = False,
) -> str:
    """Renders and writes the page (with `series` when the caller has them already); says where in one
    line on stderr unless `quiet`, and returns that line. A DoctorError when it cannot be written."""
    import sys

    from diagnose.derive.series import window_series
    from diagnose.render.html import chart_keys, render_html

    series = series if series is not None else window_series(bundle, thresholds, progress)
    page = render_html(report, series, bundle)
    target = write_page(path, page)
    drawn = len(chart_keys(series))
    absent = len(series.charts) - drawn
    size_kb = len(page.encode()) / 1024
    said = f"HTML report written to {target} ({size_kb:.0f} KB, {drawn} charts" + (
        f"; {absent} not drawn, the page says why)" if absent else ")"
    )
    if not quiet:
        print(said, file=sys.stderr)
    return said


def write_page(path: Path, page: str) -> Path:
    """Writes `page` to `path` whole or not at all; a DoctorError (USAGE) when it cannot be written."""
    import os
    import tempfile

    from diagnose.errors import DoctorError
    from diagnose.exit_status import ExitStatus

    target = Path(path)
    if target.is_dir():
        raise DoctorError(
            f"--html {target} is a folder", "give a file name, e.g. --html report.html", ExitStatus.USAGE
        )
    # Written beside the target, then renamed: a full disk or Ctrl-C never leaves half a page behind.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or Path("."))
    except OSError as err:
        raise DoctorError(
            f"cannot write --html {target}: {err.strerror or err}",
            "choose a file in a folder that exists and is writable",
            ExitStatus.USAGE,
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        # mkstemp makes the file private (0600); a report is meant to be shared: the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise DoctorError(
            f"cannot write --html {target}: {err.strerror or err}",
            "choose a file in a folder that exists and is writable",
            ExitStatus.USAGE,
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
