"""The two errors a config can cause: a value not allowed, and a training that diverged."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is not allowed; the message names the key and what is allowed."""


class DivergedError(ArithmeticError):
    """Training's loss stopped being a finite number: a learning rate too high for the data."""
