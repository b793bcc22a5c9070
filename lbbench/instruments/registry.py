"""The instruments by name: every module of this package that defines NAME and `build(cfg, ctx)`.

A new instrument is one module here (plus its Config fields); nothing registers it and nothing
else names it. As in big_vision, modules are found and imported by name, so importing the
package mutates no global table. `ORDER` (default 100) decides the order in which instruments
due at the same step run: the curvature tracker before the gradient tests, which reuse its top
eigenvector.
"""

from __future__ import annotations

import importlib
import pkgutil

from lbbench import instruments as _package
from lbbench.instruments.base import BuildContext, Instrument, TopVectors

NOT_INSTRUMENTS = ("base", "registry", "scheduler")


def _modules() -> dict:
    out = {}
    for info in pkgutil.iter_modules(_package.__path__):
        if info.name in NOT_INSTRUMENTS:
            continue
        module = importlib.import_module(f"{_package.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "build"):
            out[module.NAME] = module
    return dict(sorted(out.items(), key=lambda kv: (getattr(kv[1], "ORDER", 100), kv[0])))


def names() -> list[str]:
    """Every instrument's name, in the order instruments due at the same step run."""
    return list(_modules())


def get(name: str):
    """The module of instrument `name`; KeyError naming the known instruments otherwise."""
    modules = _modules()
    if name not in modules:
        raise KeyError(f"no instrument {name!r}; known: {', '.join(modules)}")
    return modules[name]


def build(cfg, steps_per_epoch: int) -> list[Instrument]:
    """The instruments `cfg` switches on, built for one group of trials (per-trial state inside)."""
    ctx = BuildContext(steps_per_epoch=steps_per_epoch, vectors=TopVectors())
    built = (module.build(cfg, ctx) for module in _modules().values())
    return [inst for inst in built if inst is not None]
