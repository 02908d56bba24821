"""The codebase's own gates, run with the suite (so README's test command and CI apply them):
ruff (pyflakes, isort, numpy docstrings on the public API, mccabe <= 15, configured in pyproject.toml),
and the shape limits — no module in geo/, optimize/, api/ over 450 lines, no function over 80 lines."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("geo", "optimize", "api", "gridplan")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed (it is in the test extra: pip install -e '.[test]')"
    r = subprocess.run([ruff, "check", "--no-cache", *PACKAGES], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_modules_and_functions_stay_small():
    too_long = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}(): {n} lines")
    assert not too_long, "\n".join(too_long)
