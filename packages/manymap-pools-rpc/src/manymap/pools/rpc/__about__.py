"""Version of the manymap-pools-rpc distribution."""

__version__ = "0.1.0"
