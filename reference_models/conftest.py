"""The reference suite's shared fixtures: budgets from budgets.toml, and the end-of-run trend plot.

Written the way a user writes model-quality tests: nothing here reaches into pytest-tinyml's internals.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUDGETS_FILE = Path(__file__).with_name("budgets.toml")


@dataclass
class Budget:
    """One model's table from budgets.toml."""

    model: str
    values: dict
    boards: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"budgets.toml has no {name!r} for [{self.model}]") from None

    def get(self, name, default=None):
        return self.values.get(name, default)

    def board(self, kind: str) -> dict | None:
        return self.boards.get(kind)


@pytest.fixture(scope="session")
def reference_budgets() -> dict[str, Budget]:
    tables = tomllib.loads(BUDGETS_FILE.read_text())
    budgets = {}
    for model, table in tables.items():
        table = dict(table)
        boards = table.pop("board", {})
        budgets[model] = Budget(model, table, boards)
    return budgets
