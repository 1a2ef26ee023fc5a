"""index.ipynb, what binder opens, executed top to bottom as a visitor would run it."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

pytestmark = pytest.mark.slow  # executes the notebook in a kernel


def test_the_notebook_runs_offline_and_draws_its_figures():
    notebook = nbformat.read(REPO / "index.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code), (
        "commit index.ipynb without outputs (keeps the image's build context lean)"
    )
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()  # raises on any cell's error
    outputs = [output for cell in code for output in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # log-mel, top genres, timeline
    assert any("audio" in o.get("data", {}).get("text/html", "") for o in outputs)  # the player
    text = "".join(o.get("text", "") for o in outputs)
    assert "got the class prior: {'silence': 'silent (digital silence)'}" in text
    assert not [o for o in outputs if o.output_type == "error"]
    json.dumps(notebook)  # still a valid notebook after execution
