"""The methods: every module of this package is one method (or a family) and registers itself when
imported; importing the package imports them all (a new file here is a new method, nothing else to edit)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
