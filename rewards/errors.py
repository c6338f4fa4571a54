"""The rewards package's exceptions: one root, a few kinds a caller may want to tell apart."""

from __future__ import annotations


class RewardsError(Exception):
    """Anything the rewards package refuses to do."""


class ParamsError(RewardsError):
    """Epoch parameters that cannot be used (a share out of range, an unknown key ...)."""


class InputsError(RewardsError):
    """An epoch's input tables (or their published file) are malformed."""
