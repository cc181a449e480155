"""Entry point of the ``cropsal`` command; configures logging and maps errors to exit codes."""

from __future__ import annotations

import logging
import os
import sys
import unicodedata
from typing import ClassVar

import click

from cropsal import __version__
from cropsal.errors import ExitCode


class LazyGroup(click.Group):
    """Imports each command's module only when that command runs, so start-up stays fast."""

    commands_by_module: ClassVar[dict[str, str]] = {
        "bench": "cropsal.cli.bench:bench",
        "crop": "cropsal.cli.crop:crop",
        "eval": "cropsal.cli.eval:eval_command",
        "train": "cropsal.cli.train:train",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands_by_module)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.commands_by_module.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = __import__(module_name, fromlist=[attr])
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cropsal")
def cli() -> None:
    """Crop images around what people look at, with a saliency network trained on eye-tracking
    data. Run 'cropsal COMMAND --help' for a command's options."""


def configure_logging(verbosity: int) -> None:
    """-q → errors only, default → warnings and a summary, -v → info, -vv → debug; on stderr."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="cropsal: %(message)s", stream=sys.stderr, force=True)


ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b`` …), so that a file
    name in a message stays on one line and shows as it is named, never as terminal codes."""
    return "".join(_escape(c) for c in text)


def _escape(char: str) -> str:
    if unicodedata.category(char) != "Cc":
        return char
    return ESCAPES.get(char, f"\\x{ord(char):02x}")


def main() -> None:
    try:
        status = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("cropsal: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(ExitCode.USAGE)
    except KeyboardInterrupt:
        click.echo("cropsal: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # the reader of stdout went away (`cropsal crop … --json - | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.INPUTS_FAILED)
    sys.exit(int(status) if isinstance(status, int) else ExitCode.OK)


if __name__ == "__main__":
    main()
