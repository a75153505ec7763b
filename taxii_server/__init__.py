"""taxii-server: a TAXII 2.1 threat-intelligence exchange server."""

__version__ = "0.1.0"
