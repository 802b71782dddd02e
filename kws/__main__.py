"""``python -m kws`` runs the command-line interface."""

from kws.cli import main

main()
