"""The error types kws raises for problems a user can fix.

The command-line interface prints a :class:`KwsError` as one line on stderr (never a
traceback) and exits with :attr:`KwsError.exit_code`.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Control characters (all but the tab) as the escapes Python writes for them.
_ESCAPES = {code: repr(chr(code))[1:-1] for code in (*range(32), 127) if code != 9}


def printable(text: str) -> str:
    """``text`` with its control characters escaped (a newline in a file name as ``\\n``),
    so that a message naming it stays one line and cannot fake another."""
    return text.translate(_ESCAPES)


class KwsError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 1


class UsageError(KwsError):
    """The command was called with options that cannot work together."""

    exit_code = 2


class AudioError(KwsError):
    """A file could not be read as audio; the message names the file and the problem."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(KwsError):
    """A dataset folder is missing, empty or not in a layout kws understands."""


class UnreadableInputsError(DatasetError):
    """Too little of the inputs could be read for the run to go on.

    ``failures`` are one-line messages naming each input that could not be read, and
    ``notes`` remarks on what was left out: the CLI prints them (as it does when a run goes
    on) before this error's own line, so the user sees which files to fix.
    """

    def __init__(self, message: str, failures: Sequence[str] = (),
                 notes: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)
        self.notes = list(notes)


class MissingInputError(DatasetError, UsageError):
    """A file or folder named on the command line does not exist or is not what was asked.

    A usage error (exit code 2), and a :class:`DatasetError` for callers that catch those.
    """


class LexiconError(KwsError):
    """A pronunciation lexicon cannot be read, or no pronunciation of a word is known."""


class DownloadError(KwsError):
    """A download or archive failed verification or could not be extracted safely."""
