"""`python3 -m pgops`: the CLI where no console script is installed (the dev image)."""

from pgops.cli import run

run()
