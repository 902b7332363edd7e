"""User extensions loaded from outside the package: modules named in a config, and entry points.

A plugin is any importable module that registers things when imported (a loss term, a
variant, a memory rule, a dataset, a clusterer). Two ways to load one:

- a config key: ``plugins: [my_lab.hcm_ext]`` in a recipe (or ``--set plugins=[...]``);
  the module must be importable (installed, or on ``PYTHONPATH``);
- an installed package's entry point in group ``hcm.plugins``, loaded by every command::

      [project.entry-points."hcm.plugins"]
      my_ext = "my_lab.hcm_ext"

Loading is idempotent: Python imports a module once.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterable

from hcm.errors import ConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hcm.plugins"


def load_entry_points() -> list[str]:
    """Import every module of the ``hcm.plugins`` entry point group; their names."""
    loaded = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise ConfigError(
                f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}): import failed ({exc}); "
                "fix or uninstall the package that declares it"
            ) from exc
        loaded.append(ep.value)
    return loaded


def load_plugins(modules: Iterable[str] | None = None, *, source: str = "<config>") -> None:
    """Import the ``hcm.plugins`` entry points and ``modules`` (dotted module names)."""
    load_entry_points()
    for name in modules or ():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: plugins must be a list of module names, got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"{source}: plugin module {name!r} could not be imported ({exc}); install it or put its "
                "folder on PYTHONPATH"
            ) from exc
        log.debug("loaded plugin %s", name)
