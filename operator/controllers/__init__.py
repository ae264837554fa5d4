"""Controllers beyond the core (Instances and Hosts, in `kubenova.operator.handlers`).

Each module here is one controller (volumes, networks, projects, ...) and exposes

    def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None

which adds its kopf handlers. Modules are discovered, so adding a controller is adding a
file. A controller reaches the shared runtime (API client, inventory engine, placer,
catalog, events) as `memo["runtime"]` (a `kubenova.operator.runtime.Runtime`) and keeps
its own state in `memo[<its name>]`, created in its own startup handler.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Protocol

import kopf

from kubenova.operator.config import OperatorConfig


class Controller(Protocol):
    def register(self, registry: kopf.OperatorRegistry, config: OperatorConfig) -> None: ...


def register_all(registry: kopf.OperatorRegistry, config: OperatorConfig) -> list[str]:
    """Import every controller module here and let it register; their names."""
    names = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is None:
            continue
        register(registry, config)
        names.append(module_info.name)
    return names
