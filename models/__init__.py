"""Model factories, decision thresholds and the bundle that serving loads."""
