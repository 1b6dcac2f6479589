"""Exceptions that carry a sentence fit for the user."""
import errno
import time


class GatorError(Exception):
    """Base class: `str(err)` is a clear sentence for the user, never a traceback."""


class InvalidRequest(GatorError):
    """The request's parameters are out of range or missing."""


class BackendUnavailable(GatorError):
    """A backend cannot take the request (server down, model not installed, connection lost).

    In backend="auto" mode the manager falls back to the next backend on this error. `seen_at` is when it
    was raised (time.monotonic()), so a health monitor can tell a failure from before a server came back.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.seen_at = time.monotonic()


class GenerationCancelled(GatorError):
    """The user asked to stop."""


class OutputError(GatorError):
    """A result could not be written to the output folder."""


NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def os_reason(err: BaseException) -> str:
    """Why a disk operation failed, in words and without a path: "no space left", "permission denied"..."""
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        return "no space left"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return type(err).__name__


def output_error(what: str, err: BaseException) -> OutputError:
    """The sentence for a failed write to the output folder (`what`: "The image", "The video"...), never naming
    a server path or a command line; callers log the details."""
    if os_reason(err) == "no space left":
        return OutputError(f"No space left on the output folder: {what.lower()} could not be saved. Free some "
                           "space, or set GATOR_OUTPUT_DIR to a bigger disk.")
    return OutputError(f"Could not save {what.lower()} to the output folder ({os_reason(err)}). Check that the "
                       "output folder (GATOR_OUTPUT_DIR) exists and is writable.")


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (its kind when it has none), for the end of a sentence."""
    text = str(err).strip().splitlines()
    return (text[0][:limit] if text else type(err).__name__).rstrip(".")
