"""Bundles: the folder `collect` writes and `check --from` reads (layout in DESIGN.md §5 and layout.py)."""

from diagnose.bundle.read import read_bundle
from diagnose.bundle.stream import split_dumps
from diagnose.bundle.write import BundleWriter, write_bundle

__all__ = ["BundleWriter", "read_bundle", "split_dumps", "write_bundle"]
