"""The tutorial notebooks (notebooks/*.ipynb) execute from top to bottom, on tiny data.

They are stored without outputs; here nbclient runs them in a fresh kernel with
``CHROMTRANSFER_NB_SIZE=tiny``: quickstart on the tiny workspace of :mod:`api_workspace` (in
place of ``make demo``'s output), real_data on ``../shared/data`` (skipped where it is absent).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from api_workspace import make_workspace

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e .[test])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e .[test])")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 300


def run_notebook(name: str, cwd: Path, env: dict[str, str], monkeypatch) -> "nbformat.NotebookNode":
    """Execute ``notebooks/NAME`` in ``cwd`` with ``env`` added to the kernel's environment."""
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{path} is stored with outputs: clear them (Jupyter: Edit > Clear All Outputs)"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CHROMTRANSFER_NB_SIZE", "tiny")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return notebook


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_quickstart_runs(tmp_path, monkeypatch):
    work = make_workspace(tmp_path / "workspace")
    notebook = run_notebook("quickstart.ipynb", work, {
        "CHROMTRANSFER_NB_RUN": str(work / "run"),
        "CHROMTRANSFER_NB_GENOME": str(work / "genome.fa"),
        "CHROMTRANSFER_NB_REGIONS": str(work / "regions.bed"),
        "CHROMTRANSFER_NB_WINDOW": "300",
    }, monkeypatch)
    text = outputs_text(notebook)
    assert "(5, 300) grad_x_input" in text  # the attribution cell's printed shape
    assert any(o.get("data", {}).get("image/png") for c in notebook.cells for o in c.get("outputs", [])), \
        "the logo cell drew no figure"


def test_real_data_runs(shared_data, tmp_path, monkeypatch):
    notebook = run_notebook("real_data.ipynb", tmp_path, {"CHROMTRANSFER_SHARED_DATA": str(shared_data)},
                            monkeypatch)
    text = outputs_text(notebook)
    assert "auroc" in text and "sites" in text
