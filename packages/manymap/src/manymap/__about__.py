"""Version of the manymap distribution."""

__version__ = "0.1.0"
