"""The example govnode plugin: every hook once, as a template to copy."""
