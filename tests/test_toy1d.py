"""The 1-D Figure 1 experiment (experiments/toy1d.py), end to end at the QUICK size."""

import contextlib
import dataclasses
import io
import json
import math

import numpy as np
import pytest
import scipy.special
from PIL import Image

from experiments import toy1d

# One worker runs this module: its tests share a costly module fixture.
pytestmark = pytest.mark.xdist_group("toy1d")

PANEL_KEYS = {
    "step",
    "jsd_nats",
    "d_mean_on_data",
    "d_max_dev_from_half_on_data",
    "max_abs_d_minus_d_star",
    "p_g_mean",
    "p_g_std",
    "p_g_mass_outside_window",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The command line's entry point on the QUICK preset: ``(summary, stdout, out_dir)``."""
    out_dir = tmp_path_factory.mktemp("toy1d")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        summary = toy1d.main(["--quick", "--out-dir", str(out_dir)])
    return summary, stdout.getvalue(), out_dir


def test_quick_run_converges_to_the_global_optimum(quick_run):
    """Theorem 1 at the end of Algorithm 1: p_g ~ p_data and D(x) ~ 1/2 on the data.

    Bounds: |D(x) - 1/2| < 0.1 over data_mean +- 2 data_std and JSD(p_data || p_g) < 0.02
    nats (the QUICK run measures under 0.001 on seeds 0-3; the offset start is 0.21).
    """
    summary, _, _ = quick_run
    panels = summary["panels"]
    assert panels["d"]["d_max_dev_from_half_on_data"] < 0.1
    assert abs(panels["d"]["d_mean_on_data"] - 0.5) < 0.1
    assert panels["d"]["jsd_nats"] < 0.02
    assert abs(panels["d"]["p_g_mean"] - 4.0) < 0.1 and abs(panels["d"]["p_g_std"] - 0.5) < 0.1
    # The start really was away from the optimum, and D only learned in (a) and (b).
    assert panels["a"]["jsd_nats"] > 0.1
    assert panels["a"]["jsd_nats"] == panels["b"]["jsd_nats"]  # G fixed while D trains
    assert panels["b"]["max_abs_d_minus_d_star"] < 0.1  # Proposition 1
    assert panels["b"]["d_max_dev_from_half_on_data"] > 0.3  # D separates before G moves
    assert panels["c"]["jsd_nats"] < panels["b"]["jsd_nats"]  # G moved towards the data
    # Every iteration of every phase has its own step (and so its own keys).
    quick = toy1d.QUICK
    assert [panels[name]["step"] for name in "abcd"] == list(
        np.cumsum(
            [quick.partial_d_steps, quick.optimal_d_steps, quick.g_move_steps,
             quick.train_iterations]
        )
    )


def test_quick_run_writes_the_figure_and_the_summary(quick_run):
    summary, stdout, out_dir = quick_run
    assert set(summary["panels"]) == {"a", "b", "c", "d"}
    for numbers in summary["panels"].values():
        assert set(numbers) == PANEL_KEYS
        assert all(math.isfinite(value) for value in numbers.values())
    at_b = summary["panels"]["b"]["max_abs_d_minus_d_star"]
    assert summary["max_abs_d_minus_d_star_at_b"] == at_b
    assert set(summary["definitions"]) >= PANEL_KEYS - {"p_g_mean", "p_g_std",
                                                        "p_g_mass_outside_window"}
    assert summary["config"] == dataclasses.asdict(toy1d.QUICK.replace(out_dir=str(out_dir)))
    # The same summary is printed and saved.
    printed = json.loads(stdout)
    assert printed == json.loads(json.dumps(summary))
    with open(out_dir / "summary.json") as f:
        assert json.load(f) == printed
    # One figure with four panels side by side.
    with Image.open(out_dir / "toy1d.png") as image:
        image.verify()
    with Image.open(out_dir / "toy1d.png") as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 3 * height and height > 200
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # not blank


def test_flags_map_one_to_one_onto_the_config():
    assert toy1d._parse_flags([]) == toy1d.Config()
    assert toy1d._parse_flags(["--quick"]) == toy1d.QUICK
    assert toy1d._parse_flags(
        ["--quick", "--seed", "3", "--d-learning-rate", "0.01", "--g-loss", "nonsaturating"]
    ) == toy1d.QUICK.replace(seed=3, d_learning_rate=0.01, g_loss="nonsaturating")
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy1d.Config().seed = 1


def test_jensen_shannon_on_known_values():
    """0 for equal distributions, log 2 for disjoint ones, and a Gaussian pair by quadrature."""
    assert toy1d.jensen_shannon(np.array([0.2, 0.3, 0.5]), np.array([2.0, 3.0, 5.0])) == 0.0
    np.testing.assert_allclose(
        toy1d.jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])), math.log(2.0),
        rtol=1e-12,
    )
    # N(0, 1) vs N(1, 1.5^2) on fine bins: 0.0992901 nats by adaptive quadrature
    # (tests/test_theory.py); fine bins lose almost nothing.
    edges = np.linspace(-15.0, 15.0, 30001)
    p = np.diff(scipy.special.ndtr(edges))
    q = np.diff(scipy.special.ndtr((edges - 1.0) / 1.5))
    np.testing.assert_allclose(toy1d.jensen_shannon(p, q), 0.0992901, atol=1e-6)
