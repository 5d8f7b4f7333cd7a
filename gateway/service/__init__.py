"""The prediction service: the one pipeline both APIs share, and what it is built from."""
