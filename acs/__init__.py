"""acs: a TR-069 (CWMP) Auto-Configuration Server."""

__version__ = "0.1.0"
