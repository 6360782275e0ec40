"""Step 4 of the method: score the same (query, document) pairs on the model directly and through the
server, to separate model cost from engine + serving overhead, and to check that the scores agree.

- pairs.py: the pairs (--pairs FILE, --synthetic N) and their batches
- worker.py: the direct run, executed as a script by a Python with torch + transformers (never imported)
- direct.py: picks that Python and runs the worker; served.py: the same batches over HTTP
- compare.py: vLLM's score activation and the score comparison (pure)
- report.py: `BypassReport` (+ to_dict, schema_version); render.py: rich text; run.py: `run_bypass`

Importing this package is cheap (no torch, no requests at import time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diagnose.bypass.report import BypassReport
    from diagnose.bypass.run import run_bypass

__all__ = ["BypassReport", "run_bypass"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import diagnose.bypass.pairs` does not pull in the runner and its imports.
    if name == "run_bypass":
        from diagnose.bypass.run import run_bypass

        return run_bypass
    if name == "BypassReport":
        from diagnose.bypass.report import BypassReport

        return BypassReport
    raise AttributeError(name)
