"""Renderers: pure functions from an immutable Snapshot to one output format each."""
