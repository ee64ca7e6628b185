"""notebooks/mnist_colab.ipynb runs headless on CPU, top to bottom, and shows what it promises.

The notebook's tiny mode (``JAXGAN_NOTEBOOK_TINY=1``) trains the tiny DCGAN for 6 steps, then
resumes it to 9; the kernel is this interpreter (``python`` on ``PATH``).
"""

import os
import re
import sys

import pytest
from tests.support import ROOT

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = os.path.join(ROOT, "notebooks", "mnist_colab.ipynb")


def text_of(cell) -> str:
    return "".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "")
        for out in cell.get("outputs", [])
    )


def images_of(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


@pytest.fixture
def executed(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGAN_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("JAXGAN_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's migration warning
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,  # per cell
        resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}},
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error
    return notebook, tmp_path / "run"


def test_notebook_trains_shows_evaluates_and_resumes(executed):
    notebook, workdir = executed
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(
        out.get("output_type") != "error" for cell in code for out in cell.get("outputs", [])
    )
    assert "parameters" in code[0].metadata.get("tags", [])
    outputs = [text_of(cell) for cell in code]
    everything = "\n".join(outputs)
    assert re.search(r"devices: \[CpuDevice\(id=0\)\]", everything)
    assert re.search(r"step 6 in [\d.]+ s on 1 cpu device\(s\), resumed_from=None", everything)
    assert sum(images_of(cell) for cell in code) == 3  # the grid, the losses, the resumed grid
    parzen = re.search(r"\(sigma 0\.2\): (-?[\d.]+) nats under 200 generated digits, "
                       r"(-?[\d.]+) under uniform noise", everything)
    assert parzen, everything[-3000:]
    assert float(parzen.group(1)) > float(parzen.group(2))  # even 6 steps beat uniform noise
    assert "checkpoints: [3, 6]" in everything
    assert "restored step 6 (state.step = 6)" in everything
    assert "resumed_from=6 -> step 9" in everything
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6", "9"]
    assert (workdir / "samples" / "step_000009.png").exists()
