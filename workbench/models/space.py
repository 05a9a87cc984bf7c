"""One search-space description per model, translated by each tuning strategy into what it needs.

``Float`` and ``Int`` are ranges (``log=True`` searches them on a log scale), ``Choice``
a list of options, and ``When`` makes a parameter conditional: it is only set when
another parameter has one of the given values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workbench.errors import ModelError


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False

    def decode(self, u: float) -> float:
        """The value at position ``u`` in [0, 1] along the range (on its scale)."""
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def grid(self, resolution: int) -> list:
        return sorted({self.decode(i / (resolution - 1)) for i in range(resolution)}) if resolution > 1 else [self.decode(0.5)]


@dataclass(frozen=True)
class Int(Float):
    low: int
    high: int
    log: bool = False

    def decode(self, u: float) -> int:
        return int(min(self.high, max(self.low, round(super().decode(u)))))

    def grid(self, resolution: int) -> list:
        return sorted({int(v) for v in (self.decode(i / (resolution - 1)) for i in range(resolution))}) if resolution > 1 else [self.decode(0.5)]


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def __init__(self, *options: Any):
        object.__setattr__(self, "options", tuple(options))

    def decode(self, u: float):
        return self.options[min(len(self.options) - 1, int(u * len(self.options)))]

    def grid(self, resolution: int) -> list:
        return list(self.options)


@dataclass(frozen=True)
class When:
    """``dim`` is only searched (and set) when parameter ``parent`` takes one of ``values``."""

    parent: str
    values: tuple[Any, ...]
    dim: Float | Int | Choice

    def __init__(self, parent: str, values, dim):
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "values", tuple(values) if isinstance(values, (list, tuple)) else (values,))
        object.__setattr__(self, "dim", dim)


Space = dict[str, "Float | Int | Choice | When"]


def check_space(space: Space) -> None:
    """Refuse an empty space, an empty or inverted range, a log range through zero, or a condition on nothing."""
    if not space:
        raise ModelError("the search space is empty: give at least one parameter to search")
    for name, dim in space.items():
        inner = dim.dim if isinstance(dim, When) else dim
        if isinstance(dim, When):
            parent = space.get(dim.parent)
            if not isinstance(parent, Choice) or not set(dim.values) <= set(parent.options):
                raise ModelError(f"'{name}' depends on '{dim.parent}', which must be a Choice holding {list(dim.values)}")
        if isinstance(inner, Choice):
            if not inner.options:
                raise ModelError(f"'{name}' is a choice with no options")
        elif isinstance(inner, Float):
            if not inner.low < inner.high:
                raise ModelError(f"'{name}': the range [{inner.low}, {inner.high}] is empty; low must be below high")
            if inner.log and inner.low <= 0:
                raise ModelError(f"'{name}': a log-scale range must be positive (got low={inner.low})")
        else:
            raise ModelError(f"'{name}': {inner!r} is not a Float, Int, Choice or When")


def active(space: Space, params: dict) -> dict:
    """Only the parameters whose conditions hold."""
    return {k: v for k, v in params.items()
            if not isinstance(space.get(k), When) or params.get(space[k].parent) in space[k].values}


def decode(space: Space, unit: list[float]) -> dict:
    """A configuration from one number in [0, 1] per parameter (in the space's order)."""
    params = {name: (dim.dim if isinstance(dim, When) else dim).decode(u) for (name, dim), u in zip(space.items(), unit)}
    return active(space, params)
