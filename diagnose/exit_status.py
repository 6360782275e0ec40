"""Exit statuses of the `rerank-doctor` command. Only the CLI maps outcomes to these (httpie's ExitStatus).

| status | meaning |
|---|---|
| 0 | done; for `check`: nothing at or above `--fail-on` |
| 1 | `check`: a finding at or above `--fail-on` |
| 2 | usage error: a wrong flag or value (argparse's own status) |
| 3 | nothing could be collected: the server is unreachable, refused us, or is not vLLM |
| 4 | bad input: an unreadable bundle, thresholds or pairs file |
| 5 | a needed tool is missing (the lab's vLLM, NVML, ...) and could not be set up |
| 70 | internal error (a bug in rerank-doctor); the message says how to get the traceback |
| 130 | interrupted (Ctrl-C; SIGTERM too, but in `export`); what was collected is kept (`check` reports it) |
"""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FINDINGS = 1
    USAGE = 2
    UNREACHABLE = 3
    BAD_INPUT = 4
    MISSING_TOOL = 5
    INTERNAL = 70
    INTERRUPTED = 130
