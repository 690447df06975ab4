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


class DirectionError(ArgumentError):
    """No direction, or one a translator does not have, was asked for.

    ``str(err)`` names the Python argument (``direction=``); :meth:`cli_message` names the
    command-line option (``--direction``), for the command line to print instead.

    Attributes:
        asked: the direction asked for, or None.
        available: the directions the translator has.
        what: what was asked, e.g. "this cyclegan translator".
    """

    def __init__(self, asked, available, what: str = "this translator"):
        self.asked, self.available, self.what = asked, list(available), what
        super().__init__(self._message(" or ".join(f"direction={d!r}" for d in self.available)))

    def _message(self, how: str) -> str:
        have = ", ".join(self.available)
        if self.asked is None:
            return f"{self.what} has the directions {have}; pass {how} to choose one"
        return f"direction {self.asked!r} is not in {self.what}; it has: {have}"

    def cli_message(self) -> str:
        return self._message("--direction " + "|".join(self.available))

    def __reduce__(self):
        return (type(self), (self.asked, self.available, self.what))
