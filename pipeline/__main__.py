"""`python -m pipeline` runs the tunnelpi CLI."""

from pipeline.cli import main

main()
