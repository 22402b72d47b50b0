"""A plugin whose import fails: it needs a module that is not installed."""

from __future__ import annotations

import importlib

importlib.import_module("govnode_probe_missing_dependency")

plugin = object()
