"""``python -m cropsal`` runs the command-line interface."""

from cropsal.cli.main import main

main()
