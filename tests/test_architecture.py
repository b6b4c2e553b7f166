"""The layers point one way: the library (`hetcomp_tf` and its subpackages, minus its CLI `hetcomp_tf/commands`)
imports nothing from the layers built on it, so it runs without TFX and no package cycle hides behind a lazy import.
Its subpackages' `__init__.py` hold a docstring only (importing `hetcomp_tf.data.datafiles` must not import
TensorFlow, and a name has one home), and docs/ARCHITECTURE.md names every module.

Read with `ast`, not by importing: an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "hetcomp_tf"
ABOVE = ("components", "pipeline", "serving", "tfx", "hetcomp_tf.commands")
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
REGISTRIES = {LIBRARY / "models" / "__init__.py"}  # the teachers' registry: the one package body with code


def library_modules() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if (LIBRARY / "commands") not in p.parents)


def imported_names(path: Path) -> list[str]:
    """The module each import statement in `path` names (`from a import b` is "a.b" when b is a module)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the layer test reads absolute ones only"
            names += [node.module] if is_above(node.module) else [f"{node.module}.{a.name}" for a in node.names]
    return names


def is_above(name: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in ABOVE)


def test_the_library_imports_nothing_from_the_layers_above_it():
    modules = library_modules()
    assert len(modules) > 20, "the library's modules were not found"
    offending = sorted(
        {f"{path.relative_to(ROOT)}: {name}" for path in modules for name in imported_names(path) if is_above(name)}
    )
    assert not offending, "library modules importing from the layers above:\n" + "\n".join(offending)


def test_subpackages_hold_no_code_in_their_init():
    inits = [p for p in library_modules() if p.name == "__init__.py" and p != LIBRARY / "__init__.py"]
    assert len(inits) >= 6, "the library's subpackages were not found"
    with_code = sorted(
        str(p.relative_to(ROOT))
        for p in inits
        if p not in REGISTRIES
        and not all(
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            for node in ast.parse(p.read_text(encoding="utf-8")).body
        )
    )
    assert not with_code, "subpackage __init__.py with more than a docstring:\n" + "\n".join(with_code)


def test_the_architecture_page_names_every_library_module():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    unnamed = sorted(
        str(p.relative_to(ROOT))
        for p in library_modules()
        if p.name != "__init__.py" and f"`{p.name}`" not in text and f"{p.name}`" not in text
    )
    assert not unnamed, "library modules docs/ARCHITECTURE.md does not name:\n" + "\n".join(unnamed)
