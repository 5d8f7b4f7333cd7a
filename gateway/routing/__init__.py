"""Traffic routing: which variant of a model serves a request."""
