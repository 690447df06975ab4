"""Errors a user can fix, as opposed to bugs.

Every error raised for something the user asked for (a configuration value, a dataset folder, a
checkpoint, an output path...) derives from :class:`UserError`. The command line reports these
as one paragraph on stderr with exit status 2; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user asked for cannot be done; the message says why and how to fix it."""


class ArgumentError(UserError, ValueError):
    """An argument value is not valid (also a ``ValueError``, for callers that catch that)."""
