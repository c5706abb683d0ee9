"""Deterministic simulation of a hub and edge nodes over an in-memory, faulty link."""
