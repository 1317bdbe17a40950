"""status-bridge: an honest public status page driven by real monitoring."""

__version__ = "0.1.0"
