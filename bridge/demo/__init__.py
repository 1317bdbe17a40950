"""Bundled demo: a config and simulated Nagios data for ``status-bridge demo``."""
