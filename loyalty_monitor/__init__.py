"""Loyalty Monitor: warn account managers before customers drift away for lack of dialogue."""

__version__ = "0.1.0"
