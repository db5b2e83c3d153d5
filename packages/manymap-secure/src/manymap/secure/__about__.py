"""Version of the manymap-secure distribution."""

__version__ = "0.1.0"
