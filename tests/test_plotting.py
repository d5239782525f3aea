"""The figures: written, valid images, drawn from the reference, shaded from the properties,
and changed by the hyper-parameters (and only by them: same inputs, same bytes)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle
from PIL import Image

import actlab
from actlab import plotting, properties, registry

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_FILES = [f"{n}.png" for n in registry.names()] + ["rectifier_family.png", "overview.png"]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> list[Path]:
    return plotting.write_all(tmp_path_factory.mktemp("figs"), "png")


def pixels(fig) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def spans(ax, gid: str) -> list[tuple[float, float]]:
    """x-extents (data units) of the axvspans with this gid."""
    out = []
    for p in ax.patches:
        if p.get_gid() == gid:
            assert isinstance(p, Rectangle)
            out.append((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)))
    return sorted(out)


def line(ax, label: str):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


# --- files ---------------------------------------------------------------------------------------


def test_write_all_writes_every_figure_as_a_valid_png(written):
    assert [p.name for p in written] == ALL_FILES
    for path in written:
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, path
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        with Image.open(path) as im:
            w, h = im.size
            arr = np.asarray(im.convert("L"), dtype=float)
        assert 700 <= w <= 2500 and 350 <= h <= 1000, (path.name, w, h)
        assert arr.std() > 5, path  # not blank


def test_hyper_parameters_change_exactly_the_figures_that_show_them(written, tmp_path):
    changed = plotting.write_all(tmp_path, "png", {"leaky_relu": {"negative_slope": 0.3}},
                                 only=["sigmoid", "leaky_relu", "rectifier_family", "overview"])
    before = {p.name: p.read_bytes() for p in written}
    after = {p.name: p.read_bytes() for p in changed}
    assert after["sigmoid.png"] == before["sigmoid.png"]  # same inputs, same bytes
    for name in ("leaky_relu.png", "rectifier_family.png", "overview.png"):
        assert after[name] != before[name], name


def test_svg_and_pdf_on_request_and_reproducible(tmp_path):
    svg = plotting.write_all(tmp_path / "a", "svg", only=["relu"])
    pdf = plotting.write_all(tmp_path / "a", "pdf", only=["relu"])
    assert [p.name for p in svg + pdf] == ["relu.svg", "relu.pdf"]
    text = svg[0].read_bytes()
    assert text.startswith(b"<?xml") and b"<svg" in text
    assert pdf[0].read_bytes().startswith(b"%PDF")
    again = plotting.write_all(tmp_path / "b", "svg", only=["relu"])
    assert again[0].read_bytes() == text


def test_only_takes_aliases_and_figure_names(tmp_path):
    paths = plotting.write_all(tmp_path, "png", only=["TANH", "leaky"])  # figure names: see above
    assert [p.name for p in paths] == ["tanh.png", "leaky_relu.png"]


@pytest.mark.parametrize("kwargs, error", [
    ({"fmt": "jpg"}, "valid: png, svg, pdf"),
    ({"only": ["nope"]}, "unknown figure 'nope'"),
    ({"hparams": {"elu": {"beta": 1}}}, "unknown hyper-parameter 'beta'"),
    ({"hparams": {"softsign": {}}}, "unknown activation 'softsign'"),
    ({"hparams": {"leaky_relu": {"negative_slope": -1}}}, "invalid negative_slope"),
])
def test_errors_before_anything_is_written(tmp_path, kwargs, error):
    out = tmp_path / "new"
    with pytest.raises(ValueError, match=error):
        plotting.write_all(out, **kwargs)
    assert not out.exists()


def test_out_must_be_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError):
        plotting.write_all(f, only=["relu"])


def test_headless_without_pyplot(tmp_path):
    code = ("import sys; from actlab import plotting; "
            f"plotting.write_all({str(tmp_path)!r}, 'png', only=['tanh']); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"  # an interactive backend that cannot start here: never touched
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert (tmp_path / "tanh.png").read_bytes()[:8] == PNG_SIGNATURE


# --- what is drawn ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, hp", [
    ("sigmoid", {}), ("tanh", {}), ("relu", {}),
    ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.3}),
    ("prelu", {}), ("prelu", {"init": 0.6, "num_parameters": 3}),
    ("rrelu", {}), ("rrelu", {"form": "divisor"}),
    ("elu", {}), ("elu", {"alpha": 0.4}),
])
def test_curves_are_the_reference(name, hp):
    fig = plotting.figure(name, **hp)
    ax_f, ax_g = fig.axes[:2]
    ref = actlab.get(name, **hp)
    f = [ln for ln in ax_f.get_lines() if ln.get_label().startswith("f(x)")][0]
    x = np.asarray(f.get_xdata())
    assert x.min() == -6 and x.max() == 6 and 0.0 in x
    channels = hp.get("num_parameters", 1)
    xs = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    y = ref.forward(xs)
    np.testing.assert_allclose(f.get_ydata(), y[:, 0] if channels > 1 else y, rtol=1e-12, atol=1e-12)
    g = line(ax_g, "f′(x)")
    gx = np.asarray(g.get_xdata())
    gy = ref.grad(np.repeat(gx[:, None], channels, axis=1) if channels > 1 else gx)
    np.testing.assert_allclose(g.get_ydata(), gy[:, 0] if channels > 1 else gy, rtol=1e-12, atol=1e-12)


def test_figure_pixels_change_with_the_hyper_parameter_and_not_otherwise():
    a = pixels(plotting.figure("elu", alpha=1.0))
    assert np.array_equal(a, pixels(plotting.figure("elu")))
    assert not np.array_equal(a, pixels(plotting.figure("elu", alpha=0.3)))


@pytest.mark.parametrize("name, hp, dead, saturation", [
    ("sigmoid", {}, [], "both"),
    ("tanh", {}, [], "both"),
    ("relu", {}, [(-6.0, 0.0)], None),
    ("leaky_relu", {}, [], None),
    ("leaky_relu", {"negative_slope": 0.0}, [(-6.0, 0.0)], None),
    ("prelu", {"init": 0.0}, [(-6.0, 0.0)], None),
    ("rrelu", {}, [], None),
    ("elu", {}, [], "left"),
    ("elu", {"alpha": 0.0}, [(-6.0, 0.0)], None),
])
def test_regions_are_shaded_from_the_properties(name, hp, dead, saturation):
    fig = plotting.figure(name, **hp)
    p = properties.of(name, measure_cost=False, **hp)
    onset = p["saturation_onset"]
    expected_sat = {
        None: [],
        "left": [(-6.0, onset["left"])],
        "both": [(-6.0, onset["left"]), (onset["right"], 6.0)],
    }[saturation]
    for ax in fig.axes[:2]:  # f and f' alike
        assert spans(ax, "dead_zone") == dead
        assert spans(ax, "saturation") == expected_sat
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("dead zone") for t in labels) is bool(dead)
    assert any(t.startswith("saturation") for t in labels) is bool(saturation)


def test_the_kink_is_marked_with_the_chosen_derivative():
    for name, hp, value in [("relu", {}, 0.0), ("leaky_relu", {"negative_slope": 0.2}, 0.2), ("elu", {"alpha": 0.5}, 0.5)]:
        ax_g = plotting.figure(name, **hp).axes[1]
        (dot,) = [ln for ln in ax_g.get_lines() if "choice at the kink" in ln.get_label()]
        assert list(dot.get_xdata()) == [0.0] and list(dot.get_ydata()) == pytest.approx([value])
    ax_g = plotting.figure("sigmoid").axes[1]
    assert not [ln for ln in ax_g.get_lines() if "kink" in ln.get_label()]


def test_rrelu_band_spans_the_training_slopes():
    for hp in ({}, {"form": "divisor"}, {"lower": 0.05, "upper": 0.5}):
        lo, hi = actlab.get("rrelu", **hp).slope_bounds()
        ax_f, ax_g = plotting.figure("rrelu", **hp).axes[:2]
        (band_g,) = [c for c in ax_g.collections if isinstance(c, PolyCollection) and c.get_gid() == "train_band"]
        ys = band_g.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(lo) and ys.max() == pytest.approx(hi)
        (band_f,) = [c for c in ax_f.collections if c.get_gid() == "train_band"]
        v = band_f.get_paths()[0].vertices
        at_minus_6 = v[np.isclose(v[:, 0], -6.0), 1]
        assert sorted(at_minus_6)[0] == pytest.approx(-6 * hi) and sorted(at_minus_6)[-1] == pytest.approx(-6 * lo)


def test_rectifier_family_and_overview_layout():
    fam = plotting.rectifier_family({"leaky": {"negative_slope": 0.2}})
    assert len(fam.axes) == 2 * len(plotting.FAMILY)
    assert "negative_slope=0.2" in fam.axes[1].get_title()
    assert spans(fam.axes[0], "dead_zone") == [(-4.0, 0.0)]  # ReLU, from its properties
    ov = plotting.overview()
    assert len(ov.axes) == 2 * len(registry.names())
    assert [ax.get_title().split("\n")[0].split(" (")[0] for ax in ov.axes[:7]] == \
        [registry.entry(n).title for n in registry.names()]
