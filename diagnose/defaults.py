"""Defaults more than one command shares, declared once (no imports: `--help` reads them).

The load's shape when no flag says otherwise, for `demo`, `check --stress` and `stress` alike: one query
and 20 passages of 100 words, a typical reranker call. diagnose/commands/shared_args.py declares the flags;
diagnose.stress.LoadConfig uses the same numbers.
"""

DEFAULT_DOCS_PER_CALL = 20
DEFAULT_WORDS_PER_DOC = 100
# After sending stops, calls still in flight get this long to answer; the rest are cancelled and counted
# as unfinished, so a run ends at most this long after its duration, not a per-call timeout (30 s) later.
# Long enough that a server a few seconds behind still answers its tail (the slowest calls are the ones
# a cut would hide), short enough to wait for with a progress line.
DEFAULT_DRAIN_S = 10.0
