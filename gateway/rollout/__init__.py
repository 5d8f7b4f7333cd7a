"""Canary rollout commands that edit the routing YAML in place."""
