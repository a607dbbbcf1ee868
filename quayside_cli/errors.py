"""The one exception the command raises on purpose: its message names what is wrong and what to do."""

from __future__ import annotations


class QuaysideError(RuntimeError):
    """One line for the user: the stack, role or key that is wrong, and what to do about it."""
