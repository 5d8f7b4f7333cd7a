"""Load tests and benchmarks of the gateway against its baselines."""
