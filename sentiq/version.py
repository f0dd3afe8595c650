"""The package's version, in a leaf module that every layer may read."""

__version__ = "0.5.0"
