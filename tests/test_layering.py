"""The package's dependencies point one way (README "Layout"): each module imports only
modules of its own package or of packages below it."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "electra_tf"
# Lowest first; a package may import itself and anything earlier in the list.
LAYERS = [["schema", "files"], ["config"], ["text"], ["data"], ["models"], ["training"],
          ["export", "convert"], ["interpret"]]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(relative):
    """The layer unit of a module path relative to electra_tf/: "data", "config", ..."""
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_units(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "electra_tf":
                continue
            if len(parts) > 1:
                yield parts[1], node.lineno
            else:  # from electra_tf import config, schema
                for alias in node.names:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}:{node.lineno}: relative import (use electra_tf.…)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "electra_tf" and len(parts) > 1:
                    yield parts[1], node.lineno


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_unit_has_a_layer():
    units = {_unit(p.relative_to(PACKAGE)) for p in MODULES}
    assert units <= set(RANK), f"modules outside LAYERS: {sorted(units - set(RANK))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    unit = _unit(path.relative_to(PACKAGE))
    upward = [f"line {line}: {target}" for target, line in _imported_units(path)
              if target in RANK and RANK[target] > RANK[unit]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({unit}) imports a higher layer: {upward}"


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from electra_tf.training import finetune\nfrom electra_tf import config\n")
    assert list(_imported_units(module)) == [("training", 1), ("config", 2)]
