"""The lower layers (media, storage, transcription) never import the server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOWER = ("media", "storage", "transcription")


def server_imports(source: str, filename: str = "<src>") -> list[str]:
    """``server`` modules imported anywhere in ``source`` (also inside functions)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                  "import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        else:
            continue
        found += [f"{n} (line {node.lineno})" for n in names
                  if n == "server" or n.startswith("server.")]
    return found


def test_checker_finds_server_imports() -> None:
    src = (
        "import os\nimport server.app\nfrom server import i18n\n"
        "def f():\n    from server.i18n import t\n"
        "import importlib\nimportlib.import_module('server.live')\n"
        "from . import sdp\nimport serverless\n"
    )
    assert server_imports(src) == [
        "server.app (line 2)", "server (line 3)", "server.i18n (line 5)", "server.live (line 7)",
    ]


@pytest.mark.parametrize("package", LOWER)
def test_lower_layer_source_does_not_import_server(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    bad = []
    for path in files:
        rel = path.relative_to(ROOT)
        bad += [f"{rel}: {x}" for x in server_imports(path.read_text(encoding="utf-8"), str(rel))]
    assert not bad, "\n".join(bad)


def test_importing_the_lower_layers_loads_no_server_module() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import media, storage, transcription\n"
        "count = 0\n"
        "for pkg in (media, storage, transcription):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "        count += 1\n"
        "loaded = sorted(m for m in sys.modules if m == 'server' or m.startswith('server.'))\n"
        "assert not loaded, loaded\n"
        "print(count)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # Every submodule was imported, not just the packages.
    assert int(result.stdout) == sum(
        len([p for p in (ROOT / pkg).glob("*.py") if p.name != "__init__.py"]) for pkg in LOWER)


def test_the_subprocess_check_can_see_server_modules() -> None:
    """The same check notices a server import (so its silence above means something)."""
    code = (
        "import sys, server.i18n\n"
        "assert not any(m == 'server' or m.startswith('server.') for m in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "AssertionError" in result.stderr
