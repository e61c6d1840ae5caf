"""calsvc: collaborative event scheduling over a REST API."""

__version__ = "0.1.0"
