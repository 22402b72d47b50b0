"""Plugin hooks (pluggy, project name `govnode`, entry-point group `govnode.plugins`).

The hook specifications, the plugin manager and the facade plugins receive
arrive with the plugin work; `plugins.enabled` and `plugins.blocked` are
already read from the configuration.
"""
