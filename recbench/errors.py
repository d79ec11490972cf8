"""Errors that mean "the user asked for something wrong", as opposed to bugs.

The CLI turns every :class:`UserError` into one line on stderr and exit code 2, so a typo never
produces a traceback.  Library code raises these for bad input and lets real bugs propagate.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """An unknown registry key (loss, dataset, baseline, model...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(UserError):
    """A data file is missing, corrupt or fails validation."""


class ModelError(UserError):
    """A model cannot be found or loaded."""
