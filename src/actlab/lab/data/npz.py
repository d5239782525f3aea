"""``.npz`` inputs: arrays x_train, y_train, x_test, y_test (Keras's layout), read without pickle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .common import DataError, _Raw

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load_npz(path: Path) -> _Raw:
    """Keras-layout arrays: N×D features, N×H×W or N×H×W×C images (→ N×C×H×W).

    A 4-D array whose last axis is longer than 4 and whose axis 1 is at most 4 is taken as
    already channels-first (N×C×H×W). Labels may be N or N×1 (Keras CIFAR), integer or
    integral floats. An optional ``classes`` array names the classes; otherwise they are "0".."K-1"
    with K = largest label + 1.
    """
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: cannot read as .npz ({e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array, not an .npz archive of {', '.join(_NPZ_KEYS)}")
    with npz:
        missing = [k for k in _NPZ_KEYS if k not in npz.files]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)}; needs {', '.join(_NPZ_KEYS)} "
                f"(has {', '.join(npz.files) or 'none'})"
            )
        try:
            arrays = {k: npz[k] for k in _NPZ_KEYS}
            names = npz["classes"] if "classes" in npz.files else None
        except (ValueError, OSError, zipfile.BadZipFile) as e:  # object arrays, damaged members
            raise DataError(f"{path}: {e}") from None

    x_train, layout = _images_nchw(arrays["x_train"], "x_train", path, None)
    x_test, _ = _images_nchw(arrays["x_test"], "x_test", path, layout)
    y_train = _labels(arrays["y_train"], "y_train", path)
    y_test = _labels(arrays["y_test"], "y_test", path)
    if names is not None:
        if names.ndim != 1 or len(names) == 0:
            raise DataError(f"{path}: classes must be a 1-D array of names, got shape {names.shape}")
        classes = [str(c) for c in names]
    else:
        top = max(int(y_train.max(initial=-1)), int(y_test.max(initial=-1)))
        classes = [str(i) for i in range(top + 1)]
    return _Raw(x_train, y_train, x_test, y_test, classes, meta={"source": str(path.resolve()), "layout": layout})


def _images_nchw(x: np.ndarray, key: str, path: Path, layout: str | None) -> tuple[np.ndarray, str]:
    if x.dtype.kind == "b":
        x = x.astype(np.uint8)
    if x.dtype.kind not in "uif":
        raise DataError(f"{path}: {key} has dtype {x.dtype}; numbers are needed")
    if layout is None:
        if x.ndim == 2:
            layout = "N×D features"
        elif x.ndim == 3:
            layout = "N×H×W"
        elif x.ndim == 4:
            layout = "N×C×H×W" if (x.shape[3] > 4 and x.shape[1] <= 4) else "N×H×W×C"
        else:
            raise DataError(
                f"{path}: {key} has shape {x.shape}; expected N×D features, N×H×W or N×H×W×C images"
            )
    expected_ndim = {"N×D features": 2, "N×H×W": 3, "N×C×H×W": 4, "N×H×W×C": 4}[layout]
    if x.ndim != expected_ndim:
        raise DataError(f"{path}: {key} has shape {x.shape} but x_train is {layout}")
    if layout == "N×H×W":
        x = x[:, None]
    elif layout == "N×H×W×C":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x, layout


def _labels(y: np.ndarray, key: str, where: Path | str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: {key} has shape {y.shape}; expected N labels (or N×1)")
    if y.dtype.kind in "uib":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        return y.astype(np.int64)
    raise DataError(f"{where}: {key} must hold integer class indices (dtype {y.dtype})")
