"""Operating a node over the years: backup and restore."""
