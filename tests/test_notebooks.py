"""The notebooks run top to bottom, offline, on the bundled small sample (nbclient, a real kernel).

The kernel is the running interpreter: jupyter_client maps a kernelspec whose argv starts with
``python`` to ``sys.executable``, and we fall back to ipykernel's own spec, so the notebooks see the
same environment (and this checkout, which their first cell puts on sys.path) as the tests.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["quickstart.ipynb", "what_if.ipynb", "merge_departments.ipynb", "maintain_grids.ipynb"]

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def kernel_manager(tmp_path: Path):
    """A KernelManager whose kernelspec starts ipykernel with this very interpreter (whatever other
    "python3" kernels the machine has)."""
    import json
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    d = tmp_path / "kernels" / "gridplan-test"
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gridplan tests", "language": "python"}))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="gridplan-test", kernel_spec_manager=ksm)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, sample_small):
    pytest.importorskip("ipykernel")
    for mod in ("matplotlib", "folium"):
        pytest.importorskip(mod, reason=f"the notebooks need {mod} (pip install {mod})")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    # the committed notebooks carry no outputs (clean diffs) and only code a reader can see
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has stored outputs"
    client = nbclient.NotebookClient(nb, km=kernel_manager(tmp_path), timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    # every code cell ran, and the plots were drawn
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)
    images = sum(1 for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= (3 if name == "quickstart.ipynb" else 2)
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # keep the executed notebook as a test artifact (open it to see what CI saw)
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    nbformat.write(nb, out / name)
