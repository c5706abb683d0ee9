"""`python -m edge_node`."""

from edge_node.cli import run

run()
