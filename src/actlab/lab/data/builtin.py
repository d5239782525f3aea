"""The two built-in sets that need no files: scikit-learn's digits and the mnist1d generator."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

from .cache import _CACHE_VERSION, _digest, _read_cache, _write_cache
from .common import DataError, _Raw, _stratified_order

# digits has no official split. This fixed seed (independent of the run seed) keeps the test set
# the same for every run, so that test accuracies of different runs are comparable.
_DIGITS_TEST_FRACTION = 0.25
_DIGITS_SPLIT_SEED = 0


def _load_digits() -> _Raw:
    """scikit-learn's 1797 8×8 digits (pixel values 0..16) with a fixed stratified 25 % test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]  # N×1×8×8
    y = bunch.target.astype(np.int64)
    order = _stratified_order(y, np.random.default_rng([_DIGITS_SPLIT_SEED, 0]))
    n_test = round(_DIGITS_TEST_FRACTION * len(y))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return _Raw(
        x[train], y[train], x[test], y[test],
        classes=[str(c) for c in bunch.target_names],
        meta={
            "source": "sklearn.datasets.load_digits",
            "test_split": f"fixed stratified {_DIGITS_TEST_FRACTION:.0%} (seed {_DIGITS_SPLIT_SEED}, "
            "independent of the run seed)",
        },
    )


def _load_mnist1d(cache: Path) -> _Raw:
    """mnist1d's procedural generator with its default args, cached (generation takes seconds)."""
    try:
        import mnist1d.data as m1d
    except ImportError as e:
        raise DataError(f"mnist1d: the mnist1d package is not installed ({e}); pip install mnist1d") from None
    args = m1d.get_dataset_args(as_dict=True)
    try:
        from importlib.metadata import version

        pkg_version = version("mnist1d")
    except Exception:  # a source checkout without metadata: the args alone key the cache
        pkg_version = "unknown"
    key_args = {k: v for k, v in args.items() if k != "url"}
    key = _digest(json.dumps([_CACHE_VERSION, pkg_version, key_args], sort_keys=True))
    cache_file: Path | None = cache / f"mnist1d-{key[:16]}.npz"
    arrays = _read_cache(cache_file, ("x_train", "y_train", "x_test", "y_test"))
    hit = arrays is not None
    seconds = 0.0
    if arrays is None:
        t0 = time.perf_counter()
        # make_dataset reseeds the global numpy and random generators; restore them so that
        # loading data never changes what a later seeded call draws.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            ds = m1d.make_dataset(m1d.get_dataset_args())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        seconds = time.perf_counter() - t0
        arrays = {
            "x_train": ds["x"].astype(np.float32)[:, None],  # N×1×40
            "y_train": ds["y"].astype(np.int64),
            "x_test": ds["x_test"].astype(np.float32)[:, None],
            "y_test": ds["y_test"].astype(np.int64),
        }
        hit = False
        if not _write_cache(cache_file, arrays):
            cache_file = None
    return _Raw(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
        classes=[str(i) for i in range(10)],
        meta={
            "source": f"mnist1d.data.make_dataset (mnist1d {pkg_version}, default args)",
            "cache_file": str(cache_file) if cache_file else None,
            "cache_hit": hit,
            "generate_seconds": round(seconds, 3),
        },
    )


# ---------------------------------------------------------------------------------------------
