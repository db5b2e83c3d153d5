"""Version of the manymap-portpicker distribution."""

__version__ = "0.1.0"
