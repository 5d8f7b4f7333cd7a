"""Baselines the benchmark compares the gateway with."""
