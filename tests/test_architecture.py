"""The layout's rule, checked: data flows one way, schema -> model -> explanation -> scoring ->
files, reports and training -> command line. Each unit (a module, or a subpackage as a whole)
imports only from the layers below it, so there is no import cycle, and a lower layer never
knows a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("data_schemas",),
    ("predictor._params", "predictor._processes"),
    ("predictor._atomic",),
    ("predictor.model",),
    ("predictor._explain",),
    ("predictor._scoring",),
    ("predictor.io", "predictor.simulation", "predictor.evaluation"),
    ("predictor._training", "predictor.serve", "predictor.distributed"),
    ("predictor._updating",),
    ("predictor._cli",),
    ("predictor", "predictor.__main__"),
)
"""Units from the bottom up; a unit may import from units in lower layers only."""

LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """The unit a module belongs to: ``data_schemas``, a subpackage of ``predictor``, a
    top-level module of ``predictor``, or the package itself."""
    parts = module.split(".")
    if parts[0] == "data_schemas":
        return "data_schemas"
    return ".".join(parts[:2])


def _imports() -> dict[str, set[str]]:
    """Unit -> the other units its modules import (at any depth, also inside functions)."""
    found: dict[str, set[str]] = {}
    for package in ("predictor", "data_schemas"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            unit = _unit(module.removesuffix(".__init__"))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    if name.split(".")[0] in ("predictor", "data_schemas"):
                        other = _unit(name)
                        if other != unit:
                            found.setdefault(unit, set()).add(other)
    return found


def test_architecture_every_unit_has_a_layer() -> None:
    units = set(_imports()) | {u for used in _imports().values() for u in used}
    assert units <= set(LEVEL), f"units without a layer: {sorted(units - set(LEVEL))}"


def test_architecture_units_import_only_from_lower_layers() -> None:
    upward = [
        f"{unit} (layer {LEVEL[unit]}) imports {other} (layer {LEVEL[other]})"
        for unit, used in _imports().items()
        for other in used
        if LEVEL[other] >= LEVEL[unit]
    ]
    assert not upward, "\n".join(upward)


def test_architecture_public_surface_is_small_and_importable() -> None:
    import predictor.distributed
    import predictor.evaluation
    import predictor.io
    import predictor.model
    import predictor.simulation

    for package in (
        predictor,
        predictor.model,
        predictor.io,
        predictor.evaluation,
        predictor.distributed,
    ):
        assert len(package.__all__) <= 30, package.__name__
        assert all(hasattr(package, name) for name in package.__all__), package.__name__
    private = [p.name for p in (ROOT / "predictor").rglob("*.py") if not p.name.startswith("_")]
    assert private == [], f"modules that should be private: {private}"
