"""govnode: the central server of a provincial government network."""

__version__ = "0.1.0"
