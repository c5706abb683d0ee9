"""Fault tests: real links, real processes, kill -9, one checker (see checker.py)."""
