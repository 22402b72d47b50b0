"""The pluggy markers of govnode (project name `govnode`)."""

from __future__ import annotations

import pluggy

PROJECT = "govnode"
ENTRY_POINT_GROUP = "govnode.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
