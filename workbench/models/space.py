"""One search-space description per model, translated by each tuning strategy into what it needs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def __init__(self, *options: Any):
        object.__setattr__(self, "options", tuple(options))


Space = dict[str, Float | Int | Choice]
