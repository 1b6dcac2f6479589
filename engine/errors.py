"""Exceptions that carry a sentence fit for the user."""


class GatorError(Exception):
    """Base class: `str(err)` is a clear sentence for the user, never a traceback."""


class InvalidRequest(GatorError):
    """The request's parameters are out of range or missing."""


class BackendUnavailable(GatorError):
    """A backend cannot take the request (server down, model not installed, connection lost).

    In backend="auto" mode the manager falls back to the next backend on this error.
    """


class GenerationCancelled(GatorError):
    """The user asked to stop."""


class OutputError(GatorError):
    """A result could not be written to the output folder."""
