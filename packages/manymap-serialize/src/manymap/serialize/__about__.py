"""Version of the manymap-serialize distribution."""

__version__ = "0.1.0"
