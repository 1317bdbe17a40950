"""status-bridge test suite."""
