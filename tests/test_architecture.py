"""The layers point one way: the library (`hetcomp_tf`, minus its CLI `hetcomp_tf/commands`) imports nothing from
the layers built on it, so it runs without TFX and no package cycle hides behind a lazy import.

Read with `ast`, not by importing: an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "hetcomp_tf"
ABOVE = ("components", "pipeline", "serving", "tfx", "hetcomp_tf.commands")


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
    offending = sorted({f"{path.relative_to(ROOT)}: {name}"
                        for path in modules for name in imported_names(path) if is_above(name)})
    assert not offending, "library modules importing from the layers above:\n" + "\n".join(offending)
