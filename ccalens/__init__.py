"""ccalens: canonical correlation analysis and its family for comparing neural-network features."""

__version__ = "0.1.0"
