"""cropsal's exceptions and exit codes: library code raises, only the CLI turns them into exits."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INPUTS_FAILED = 1  # some inputs failed; each was reported and the rest processed
    USAGE = 2
    INTERRUPTED = 130


class CropsalError(Exception):
    """Base class of expected errors: the message names the file or value and the problem."""


class ImageError(CropsalError):
    """One input image cannot be used (unreadable, undecodable, too large, …)."""


class ModelError(CropsalError):
    """The saliency model cannot be loaded or run."""


class OutputError(CropsalError):
    """The output location cannot be written: the whole run stops."""
