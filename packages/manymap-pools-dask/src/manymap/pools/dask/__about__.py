"""Version of the manymap-pools-dask distribution."""

__version__ = "0.1.0"
