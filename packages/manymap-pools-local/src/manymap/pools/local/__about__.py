"""Version of the manymap-pools-local distribution."""

__version__ = "0.1.0"
