"""Errors meant for people: one clear line, what went wrong, which file, what to do."""

from __future__ import annotations

# Per-clip status codes written to status.parquet. `ok` and the PARTIAL codes still produce
# features (the missing modality is NaN); the others produce none.
OK = "ok"
PARTIAL_CODES = frozenset({"no_audio", "silent_audio"})
ERROR_CODES = frozenset(
    {
        "missing_file",  # path does not exist
        "not_a_file",  # a directory or something else that is not a regular file
        "empty_file",  # zero bytes
        "decode_error",  # not a media file, truncated, or unreadable
        "no_video",  # audio-only file
        "too_short",  # shorter than the configured minimum duration
        "no_face",  # no face in any frame
        "internal_error",  # a bug in talkqa: the message says so
    }
)


class TalkqaError(Exception):
    """An error a user can act on. The CLI prints it as one line and exits non-zero."""

    exit_code = 1


class UsageError(TalkqaError):
    """Wrong arguments or configuration (exit status 2)."""

    exit_code = 2


class ClipError(TalkqaError):
    """A clip that cannot be processed; `code` is one of ERROR_CODES and goes to the status row."""

    def __init__(self, code: str, message: str, path: str | None = None):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown clip error code {code!r}")
        self.code = code
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{self.path}: {msg}" if self.path else msg
