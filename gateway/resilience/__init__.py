"""Resilience primitives shared by the feature store and the upstreams."""
