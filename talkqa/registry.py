"""One registry per component kind. A registry key is also the component's config file name,
Parquet file stem and column prefix, so it is the only name a component has."""

from __future__ import annotations

import re
from typing import Callable, Generic, Iterator, TypeVar

from .errors import UsageError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# Column prefix -> the component that writes `<prefix>__*` columns (feature families, experts).
_PREFIX_OWNERS: dict[str, str] = {}


class Registry(Generic[T]):
    """`column_prefix=True`: the registry's names are also column prefixes in the store, which must each
    have one producer across every such registry (a family and an expert cannot share a name)."""

    def __init__(self, kind: str, column_prefix: bool = False):
        self.kind = kind
        self.column_prefix = column_prefix
        self._items: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: registers `cls` under its `name` attribute."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} {cls.__qualname__} needs a lower_snake_case `name`, got {name!r}")
        if name in self._items and self._items[name] is not cls:
            raise ValueError(f"{self.kind} name {name!r} is registered twice")
        if self.column_prefix:
            owner = f"{self.kind} {name!r} ({cls.__module__}.{cls.__qualname__})"
            other = _PREFIX_OWNERS.setdefault(name, owner)
            if other != owner:
                raise ValueError(f"{owner} would write `{name}__*` columns, which {other} already writes; "
                                 "give one of them another name")
        self._items[name] = cls
        return cls

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UsageError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **params) -> T:
        return self.get(name)(**params)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def registered(registry: Registry) -> Callable[[type[T]], type[T]]:
    return registry.register
