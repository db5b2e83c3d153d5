"""Version of the manymap-launcher distribution."""

__version__ = "0.1.0"
