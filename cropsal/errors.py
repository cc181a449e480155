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


class SetupError(CropsalError):
    """The run cannot start as asked (a missing optional dependency, a model that cannot be
    loaded): reported like a usage error, exit status 2."""


class ModelError(SetupError):
    """The saliency model cannot be loaded or run."""


class OutputError(CropsalError):
    """The output location cannot be written (the folder cannot be created, the disk is full,
    the file system is read-only): the whole run stops."""


class OutputPathError(CropsalError):
    """One image's output file cannot be written (a folder in its place, a file where its
    folder should be): that image fails, the run goes on."""
