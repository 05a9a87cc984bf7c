"""Named registries: models, strategies and methods are looked up by name."""
from __future__ import annotations

import difflib
import importlib
from typing import Generic, Iterator, TypeVar

from workbench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table whose lookup error lists the valid names.

    Examples
    --------
    >>> r = Registry("colour"); r.register("red", 1); r.get("red")
    1

    A name may be *declared* before it is registered: ``declare(name, module)`` says that importing ``module``
    registers it. The name is known at once (``in``, iteration, error messages), and the first ``get`` imports the
    module, so a costly entry loads only when it is used.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._modules: dict[str, str] = {}  # declared name → the module whose import registers it

    def register(self, name: str, item: T) -> T:
        self._items[name] = item
        return item

    def declare(self, name: str, module: str) -> None:
        self._modules[name] = module

    def get(self, name: str) -> T:
        if name not in self._items and name in self._modules:
            importlib.import_module(self._modules[name])
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'.{hint} Valid names: {', '.join(self.names())}"
            ) from None

    def load_all(self) -> None:
        """Import every declared module, so that every name is registered."""
        for module in dict.fromkeys(self._modules.values()):
            importlib.import_module(module)

    def names(self) -> list[str]:
        return list(dict.fromkeys([*self._items, *self._modules]))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
