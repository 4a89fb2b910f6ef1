"""The static import graph behind the make rules (reintegration.pipeline.depgraph)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reintegration.pipeline import depgraph


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    """A small package ``reintegration`` with absolute, relative, submodule
    and function-level imports, and one module nobody imports."""
    root = tmp_path / "src" / "reintegration"
    files = {
        "__init__.py": "",
        "pipeline/__init__.py": "",
        "pipeline/runner.py": "from ..core import paths\n",
        "core/__init__.py": "",
        "core/paths.py": "import os\n",
        "alpha.py": "from .beta import thing\nfrom reintegration.sub import gamma\n",
        "beta.py": "def thing():\n    from . import lazy\n    return lazy\n",
        "lazy.py": "",
        "book/__init__.py": "",
        "book/generate.py": "from .. import alpha\n",
        "sub/__init__.py": "from .delta import x\n",
        "sub/gamma.py": "from ..core.paths import os\n",
        "sub/delta.py": "x = 1\n",
        "orphan.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    depgraph._graph.cache_clear()
    return root


def _notebook(path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "code", "source": s, "metadata": {}, "outputs": []} for s in sources]
    cells.insert(0, {"cell_type": "markdown", "source": "# import book", "metadata": {}})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))
    return path


def test_closure_follows_relative_submodule_and_function_level_imports(pkg):
    got = depgraph.closure({"reintegration.alpha"}, pkg)
    assert got == {
        "reintegration",
        "reintegration.alpha",
        "reintegration.beta",
        "reintegration.lazy",  # imported inside a function: counted
        "reintegration.sub",  # the package __init__ of an imported submodule
        "reintegration.sub.delta",  # ... and what that __init__ imports
        "reintegration.sub.gamma",
        "reintegration.core",  # the package __init__ of core.paths
        "reintegration.core.paths",  # from ..core.paths, two levels up
    }


def test_a_step_runs_its_imports_and_the_runners_not_the_rest(pkg, tmp_path):
    nb = _notebook(tmp_path / "t.ipynb", "%matplotlib inline\nfrom reintegration import alpha")
    files = depgraph.step_sources(nb, pkg)
    assert "src/reintegration/alpha.py" in files and "src/reintegration/pipeline/runner.py" in files
    assert "src/reintegration/book/generate.py" not in files  # imports alpha, not imported by it
    assert "src/reintegration/orphan.py" not in files
    plain = _notebook(tmp_path / "u.ipynb", "import reintegration.pipeline.runner")
    assert "src/reintegration/alpha.py" not in depgraph.step_sources(plain, pkg)


def test_a_cell_that_does_not_parse_names_the_notebook(pkg, tmp_path):
    nb = _notebook(tmp_path / "bad.ipynb", "from reintegration import (")
    with pytest.raises(SyntaxError, match="bad.ipynb"):
        depgraph.notebook_imports(nb, pkg)
