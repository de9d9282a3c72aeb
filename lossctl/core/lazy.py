"""Names of a package loaded on first use (PEP 562), so that importing the package is cheap.

>>> import types
>>> demo = types.ModuleType("demo")
>>> demo.__getattr__ = lazy_loader("math", {"tau": ""}, vars(demo))
>>> round(demo.tau, 4)
6.2832
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_loader"]


def lazy_loader(
    package: str, homes: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``package.homes[name]`` (the
    package itself for ``""``) on first use and keeps it in ``namespace`` (the module's
    globals), so that the next access costs nothing."""

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{home}" if home else package)
        value = namespace[name] = getattr(module, name)
        return value

    return load
