"""Feature enrichment: the Feast client, freshness, the last-known-good cache and the plan."""
