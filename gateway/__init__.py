"""A resilient model-serving gateway."""

__version__ = "0.1.0"
