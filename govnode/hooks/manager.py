"""Finding, loading and checking plugins: entry points, the allow/block list, pluggy.

Only plugins named in `plugins.enabled` are loaded (an operator decides what
runs inside the node); one that is enabled but not installed, fails to
import, implements a hook that does not exist or with the wrong arguments,
or refuses its settings stops start-up with a message naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pluggy

from govnode.config import Config
from govnode.config.errors import ConfigError
from govnode.domain.plugins import PluginInfo
from govnode.hooks import specs
from govnode.hooks.errors import PluginError
from govnode.hooks.markers import ENTRY_POINT_GROUP, PROJECT
from govnode.hooks.settings import PluginSettings

EntryPoints = Callable[[], Iterable[metadata.EntryPoint]]


def installed_entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


class Plugins:
    """The loaded plugins of a node, and how the node calls them."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self.pm = pm
        self._infos = infos
        self._subsets: dict[tuple[str, str], Any] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @property
    def names(self) -> list[str]:
        return [info.name for info in self._infos]

    def info(self) -> list[PluginInfo]:
        return list(self._infos)

    def implementers(self, hook_name: str) -> list[str]:
        """Names of the plugins implementing `hook_name`, in the order pluggy calls them."""
        caller = getattr(self.pm.hook, hook_name)
        return [impl.plugin_name for impl in reversed(caller.get_hookimpls())]

    def call_one(self, hook_name: str, plugin: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of `hook_name` (its failure is the caller's)."""
        key = (hook_name, plugin)
        caller = self._subsets.get(key)
        if caller is None:
            others = [p for name, p in self.pm.list_name_plugin() if name != plugin]
            caller = self._subsets[key] = self.pm.subset_hook_caller(hook_name, others)
        results = caller(**kwargs)
        if getattr(self.pm.hook, hook_name).spec.opts.get("firstresult"):
            return results
        return results[0] if results else None


_loaded: dict[tuple[str, str, EntryPoints], Plugins] = {}


def load_plugins(config: Config, *, entry_points: EntryPoints = installed_entry_points) -> Plugins:
    """Load, register and configure the enabled plugins (PluginError, ConfigError).

    Once per process for one file's `[plugins]`: `govnode serve` reads the
    plugins to build its command line and again to start the node, and a
    plugin's `govnode_configure` is called once, as its contract says.
    """
    key = (str(config.path), repr(config.plugins), entry_points)
    loaded = _loaded.get(key)
    if loaded is None:
        loaded = _loaded[key] = _load(config, entry_points)
    return loaded


def _load(config: Config, entry_points: EntryPoints) -> Plugins:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(specs)
    found = {ep.name: ep for ep in entry_points()}
    section = config.plugins
    where = f"{config.path}: plugins.enabled"
    infos: list[PluginInfo] = []
    for name in section.enabled:
        if name in section.blocked:
            raise PluginError(f"{where}: {name!r} is also in plugins.blocked; remove it from one")
        if any(i.name == name for i in infos):
            raise PluginError(f"{where}: {name!r} is named twice")
        ep = found.get(name)
        if ep is None:
            known = ", ".join(sorted(found)) or "none"
            raise PluginError(
                f"{where}: plugin {name!r} is not installed (entry points of group "
                f"{ENTRY_POINT_GROUP}: {known}); install it into govnode's environment"
            )
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {name!r} does not fit govnode's hooks: {exc}") from exc
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            raise PluginError(
                f"plugin {name!r} ({ep.value}) implements {', '.join(unknown)}, which govnode "
                "does not have (misspelled? govnode.hooks.specs lists every hook)"
            )
        distribution = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        infos.append(PluginInfo(name, version, distribution, hooks))
    plugins = Plugins(pm, infos)
    _configure(plugins, config, installed=set(found))
    return plugins


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks `plugin` implements that govnode does not specify (what pluggy's
    `check_pending` finds, for one plugin, so the message can name it)."""
    return sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or ()
        if not caller.has_spec()
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    )


def _configure(plugins: Plugins, config: Config, *, installed: set[str]) -> None:
    """Hand each enabled plugin its own section; refuse sections nobody can read."""
    settings = config.plugins.settings
    for name in settings:
        if name not in installed:
            raise ConfigError(
                config.path, f"plugins.{name}", f"no plugin named {name!r} is installed"
            )
    configuring = set(plugins.implementers("govnode_configure"))
    for name in plugins.names:
        table = settings.get(name, {})
        section = PluginSettings(config.path, f"plugins.{name}", table)
        if name not in configuring:
            if table:
                raise ConfigError(config.path, f"plugins.{name}", "this plugin takes no settings")
            continue
        try:
            plugins.call_one("govnode_configure", name, settings=section)
        except ConfigError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed to read its settings: {type(exc).__name__}: {exc}"
            ) from exc
        section.check_unknown()
