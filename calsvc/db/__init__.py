"""Query modules: plain SQL on a connection passed in first; records never leave this package."""
