"""`python -m central_hub`."""

from central_hub.cli import run

run()
