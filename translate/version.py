"""The package version (one place; ``translate.__version__`` and the distribution read it)."""

__version__ = "0.1.0"
