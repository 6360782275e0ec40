"""The one exception that crosses module boundaries: a user-facing failure with the fix in it.

Collectors return `CollectorIssue` values instead of raising. `DoctorError` is for the cases where a
command cannot go on at all (no bundle at that path, a thresholds file that is not TOML); the CLI prints
it as one line and exits with its status. Everything else that escapes is a bug (exit 70).
"""

from diagnose.exit_status import ExitStatus


class DoctorError(Exception):
    def __init__(self, message: str, fix: str = "", status: ExitStatus = ExitStatus.BAD_INPUT):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.status = status

    def one_line(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message
