"""One ``--data`` spec string → train / validation / test tensors.

A spec is one of::

    digits                     scikit-learn's bundled 8×8 digits (offline; the default)
    mnist1d                    the mnist1d generator, default args (4000 train / 1000 test, length 40)
    cifar10 | cifar100 | mnist | fashion_mnist
                               a standard set from its usual files under $ACTLAB_DATA
                               (default ~/.cache/actlab/datasets)
    cifar10=DIR                the same, from DIR
    PATH/                      an image folder: PATH/train/<class>/*.png|jpg|… and PATH/test/<class>/…
                               (or training/ and testing/)
    train=DIR,test=DIR         an image folder pair given explicitly
    FILE.npz                   arrays x_train, y_train, x_test, y_test (Keras layout)

A builtin name wins over a folder of the same name in the working directory: write ``./digits``
for the folder.

Every source ends in the same pipeline (:func:`load`): checks → ``subset`` → validation split →
per-channel normalisation with training statistics → float32 / int64 tensors. Images come out as
N×C×H×W, 1-D signals as N×C×L, feature vectors as N×D. Everything that goes wrong raises
:class:`DataError` with one line naming the problem and, where there are any, the valid choices.

Caching: decoded image folders and the generated mnist1d set are stored as ``.npz`` files under
``cache_dir`` (default ``$ACTLAB_CACHE`` or ``~/.cache/actlab``). A folder's cache file is keyed by
its path and the name, size and mtime of every image, so adding, removing or touching an image
invalidates it; a cache file that cannot be read is ignored and rewritten. The standard sets'
binary files and ``.npz`` inputs are read directly (parsing them costs less than a cache would).
Nothing is ever downloaded unless ``download=True`` is passed, and only for the standard sets.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import multiprocessing
import os
import random
import re
import struct
import tarfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["DataError", "Dataset", "load", "builtin_names", "DEFAULT_SPEC", "SPEC_HELP"]

log = logging.getLogger(__name__)

DEFAULT_SPEC = "digits"

SPEC_HELP = (
    "digits (default) | mnist1d | cifar10 | cifar100 | mnist | fashion_mnist | NAME=DIR | "
    "an image folder with train/ and test/ (or training/ and testing/) class sub-folders | "
    "train=DIR,test=DIR | a .npz file with x_train, y_train, x_test, y_test"
)

_STANDARD_NAMES = ("cifar10", "cifar100", "mnist", "fashion_mnist")
_BUILTIN_NAMES = ("digits", "mnist1d") + _STANDARD_NAMES

# Bump when the layout of a cache file changes: old files then simply stop matching.
_CACHE_VERSION = "actlab-data-1"

# digits has no official split. This fixed seed (independent of the run seed) keeps the test set
# the same for every run, so that test accuracies of different runs are comparable.
_DIGITS_TEST_FRACTION = 0.25
_DIGITS_SPLIT_SEED = 0

# Below this many files a process pool costs more to start than it saves.
_POOL_MIN_FILES = 2048

_IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
# Greyscale PIL modes load as one channel ("L"); every other mode loads as "RGB".
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class DataError(ValueError):
    """A data spec or data file that cannot be used; the message is one line naming the problem."""


@dataclass
class Dataset:
    """Train / validation / test tensors ready for a model, with where they came from.

    ``x_*`` are float32, normalised per channel (axis 1) with the mean and std of ``x_train``
    (recorded in ``meta["normalisation"]``); ``y_*`` are int64 class indices into ``classes``.
    ``x_val`` / ``y_val`` have 0 rows when the validation fraction is 0.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) images, (C, L) 1-D signals, (D,) feature vectors."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:  # the dataclass default would print whole tensors
        return (
            f"Dataset({self.name!r}: train {len(self.y_train)}, val {len(self.y_val)}, "
            f"test {len(self.y_test)}, input {self.input_shape}, {self.num_classes} classes)"
        )


def builtin_names() -> list[str]:
    """The names usable as a spec on their own: digits, mnist1d and the standard sets."""
    return list(_BUILTIN_NAMES)


# ---------------------------------------------------------------------------------------------
# load: spec → source → checks → subset → validation split → normalisation → tensors
# ---------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """What a source yields before the common pipeline: N×C×… arrays and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    meta: dict[str, Any]


def load(
    spec: str,
    *,
    subset: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> Dataset:
    """Load the data named by ``spec`` (see the module docstring) as a :class:`Dataset`.

    Args:
        spec: a builtin name, ``NAME=DIR``, an image folder, ``train=DIR,test=DIR`` or an ``.npz``.
        subset: keep only this many training examples: the first ``subset`` of a seeded,
            class-stratified shuffle of the official training set, taken *before* the validation
            split (so train + val = ``subset``). The test set is never cut.
        val_fraction: fraction of the (subset) training set held out for validation, in [0, 1),
            class-stratified and seeded by ``seed``; at least one example when > 0.
        seed: seeds the subset and the validation split (two independent streams).
        cache_dir: where decoded folders and mnist1d live; default ``$ACTLAB_CACHE`` or
            ``~/.cache/actlab``.
        download: for the standard sets only: fetch the official files into the data root when
            they are absent. Never set by tests; the CLI sets it on request only.
    """
    _check_options(subset, val_fraction, seed)
    cache = _cache_dir(cache_dir)
    canonical, kind, source = _resolve(os.fspath(spec), cache, download)
    raw = source()
    _check_raw(raw, canonical)

    n_official = len(raw.y_train)
    pool = np.arange(n_official)
    if subset is not None and subset < n_official:
        rng = np.random.default_rng([seed, 1])
        pool = np.sort(_stratified_order(raw.y_train, rng)[:subset])
    n_val = _val_count(len(pool), val_fraction, canonical)
    rng = np.random.default_rng([seed, 2])
    order = _stratified_order(raw.y_train[pool], rng)
    val_idx = pool[np.sort(order[:n_val])]
    train_idx = pool[np.sort(order[n_val:])]

    x_train = raw.x_train[train_idx]
    mean, std = _channel_stats(x_train)
    meta = {
        "spec": canonical,
        "kind": kind,
        **raw.meta,
        "official_sizes": {"train": n_official, "test": len(raw.y_test)},
        "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(raw.y_test)},
        "subset": subset,
        "val_fraction": float(val_fraction),
        "seed": int(seed),
        "normalisation": {
            "axis": 1,
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "from": "training split",
        },
    }
    return Dataset(
        name=canonical,
        x_train=_normalised(x_train, mean, std),
        y_train=_labels_tensor(raw.y_train[train_idx]),
        x_val=_normalised(raw.x_train[val_idx], mean, std),
        y_val=_labels_tensor(raw.y_train[val_idx]),
        x_test=_normalised(raw.x_test, mean, std),
        y_test=_labels_tensor(raw.y_test),
        classes=list(raw.classes),
        meta=meta,
    )


def _check_options(subset: int | None, val_fraction: float, seed: int) -> None:
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise DataError(f"invalid subset={subset!r}; valid: None or an int >= 1")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise DataError(f"invalid val_fraction={val_fraction!r}; valid: a float in [0, 1)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"invalid seed={seed!r}; valid: an int >= 0")


def _val_count(n: int, val_fraction: float, where: str) -> int:
    if val_fraction == 0:
        return 0
    n_val = max(1, round(val_fraction * n))
    if n_val >= n:
        raise DataError(f"{where}: val_fraction={val_fraction} of {n} training examples leaves none to train on")
    return n_val


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of ``range(len(y))`` whose every prefix is close to class-proportional.

    Shuffle, then sort by each example's fractional rank within its class, (rank + ½) / class size
    (Webster's apportionment): taking the first k gives each class about k · its share, and the
    first k for k = number of classes takes one of each when the classes are balanced.
    """
    perm = rng.permutation(len(y))
    yp = y[perm]
    _, inverse, counts = np.unique(yp, return_inverse=True, return_counts=True)
    by_class = np.argsort(inverse, kind="stable")  # stable: keeps shuffled order within a class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(y), dtype=np.float64)
    rank[by_class] = np.arange(len(y)) - np.repeat(starts, counts)
    key = (rank + 0.5) / counts[inverse]
    return perm[np.argsort(key, kind="stable")]


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std along axis 1 (channel, or feature for N×D), in float64, in blocks.

    Two passes (mean, then centred squares) for accuracy; blocks keep the float64 temporaries
    small for large uint8 sets such as CIFAR (50 000 × 3 × 32 × 32).
    """
    n, c = x.shape[0], x.shape[1]
    flat = x.reshape(n, c, -1)
    block = max(1, 4_000_000 // max(1, flat.shape[1] * flat.shape[2]))
    count = n * flat.shape[2]
    total = np.zeros(c)
    for i in range(0, n, block):
        total += flat[i : i + block].sum(axis=(0, 2), dtype=np.float64)
    mean = total / count
    squares = np.zeros(c)
    for i in range(0, n, block):
        d = flat[i : i + block].astype(np.float64) - mean[None, :, None]
        squares += np.einsum("nck,nck->c", d, d)
    std = np.sqrt(squares / count)
    # A channel constant over the training set carries no information; dividing by ~0 would
    # blow up any test value that differs, so leave it unscaled.
    std = np.where(std > 1e-8, std, 1.0)
    return mean, std


def _normalised(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:  # e.g. np.frombuffer over a file's bytes; torch wants writable
        x = x.copy()
    # copy=True: float32 input would otherwise share memory with the source array and be
    # normalised in place under it.
    t = torch.from_numpy(x).to(torch.float32, copy=True)
    shape = (1, len(mean)) + (1,) * (x.ndim - 2)
    t.sub_(torch.tensor(mean, dtype=torch.float32).view(shape))
    t.div_(torch.tensor(std, dtype=torch.float32).view(shape))
    return t


def _labels_tensor(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def _check_raw(raw: _Raw, where: str) -> None:
    """Checks shared by every source: row counts, shapes, finiteness, label range."""
    for split in ("train", "test"):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        if len(x) != len(y):
            raise DataError(f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise DataError(f"{where}: x_{split} contains NaN or inf")
    if raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise DataError(
            f"{where}: train examples have shape {raw.x_train.shape[1:]} but test examples {raw.x_test.shape[1:]}"
        )
    k = len(raw.classes)
    for split in ("train", "test"):
        y = getattr(raw, f"y_{split}")
        bad = y[(y < 0) | (y >= k)]
        if bad.size:
            raise DataError(f"{where}: y_{split} has label {int(bad[0])} outside 0..{k - 1} ({k} classes)")


# ---------------------------------------------------------------------------------------------
# spec → source
# ---------------------------------------------------------------------------------------------


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("ACTLAB_CACHE") or Path.home() / ".cache" / "actlab").expanduser()


def _data_root() -> Path:
    return Path(os.environ.get("ACTLAB_DATA") or Path.home() / ".cache" / "actlab" / "datasets").expanduser()


def _resolve(spec: str, cache: Path, download: bool) -> tuple[str, str, Callable[[], _Raw]]:
    """(canonical spec, kind, a function producing the raw arrays) for ``spec``."""
    spec = spec.strip()
    if spec == "digits":
        return "digits", "digits", _load_digits
    if spec == "mnist1d":
        return "mnist1d", "mnist1d", lambda: _load_mnist1d(cache)
    if spec in _STANDARD_NAMES:
        root = _data_root()
        return spec, spec, lambda: _load_standard(spec, root, download)

    path = Path(spec).expanduser()
    if path.is_dir():
        train, test = _train_test_dirs(path)
        canonical = str(path.resolve())
        return canonical, "folder", lambda: _load_folder(train, test, cache)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError(f"{spec}: unsupported file type {path.suffix or '(none)'}; a data file must be .npz")
        canonical = str(path.resolve())
        return canonical, "npz", lambda: _load_npz(path)

    if "=" in spec:
        pairs = _parse_pairs(spec)
        if set(pairs) == {"train", "test"}:
            train, test = (Path(pairs[k]).expanduser() for k in ("train", "test"))
            for d in (train, test):
                if not d.is_dir():
                    raise DataError(f"{spec}: {d} is not a folder")
            canonical = f"train={train.resolve()},test={test.resolve()}"
            return canonical, "folder", lambda: _load_folder(train, test, cache)
        if len(pairs) == 1 and next(iter(pairs)) in _STANDARD_NAMES:
            name, value = next(iter(pairs.items()))
            root = Path(value).expanduser()
            if not root.is_dir():
                raise DataError(f"{spec}: {root} is not a folder")
            return f"{name}={root.resolve()}", name, lambda: _load_standard(name, root, download)
        raise DataError(
            f"{spec}: unknown key(s) {', '.join(sorted(pairs))}; valid: train=DIR,test=DIR or NAME=DIR "
            f"with NAME one of {', '.join(_STANDARD_NAMES)}"
        )
    if os.sep in spec or "/" in spec or spec.startswith(("~", ".")) or path.suffix:
        raise DataError(f"{spec}: no such file or folder")
    raise DataError(f"unknown data spec {spec!r}; valid: {SPEC_HELP}")


def _parse_pairs(spec: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise DataError(f"{spec}: cannot parse {part!r}; expected KEY=VALUE[,KEY=VALUE]")
        if key.strip() in pairs:
            raise DataError(f"{spec}: {key.strip()} given twice")
        pairs[key.strip()] = value.strip()
    return pairs


# ---------------------------------------------------------------------------------------------
# digits and mnist1d
# ---------------------------------------------------------------------------------------------


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
# image folders
# ---------------------------------------------------------------------------------------------


def _train_test_dirs(path: Path) -> tuple[Path, Path]:
    for train_name, test_name in (("train", "test"), ("training", "testing")):
        if (path / train_name).is_dir() and (path / test_name).is_dir():
            return path / train_name, path / test_name
    present = sorted(p.name for p in path.iterdir() if p.is_dir())
    raise DataError(
        f"{path}: an image folder needs train/ and test/ (or training/ and testing/) sub-folders; "
        f"found {', '.join(present) or 'none'}"
    )


def _list_split(root: Path) -> tuple[list[str], list[list[tuple[str, int, int]]]]:
    """Sorted class folder names and, per class, its image files as (path, size, mtime_ns)."""
    with os.scandir(root) as it:
        classes = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected one folder of images per class)")
    files: list[list[tuple[str, int, int]]] = []
    for cls in classes:
        entries = []
        with os.scandir(root / cls) as it:
            for e in it:
                if e.name.startswith(".") or os.path.splitext(e.name)[1].lower() not in _IMAGE_EXTENSIONS:
                    continue
                if e.is_file():
                    st = e.stat()
                    entries.append((e.path, st.st_size, st.st_mtime_ns))
        if not entries:
            raise DataError(
                f"{root / cls}: empty class folder (no files ending in {', '.join(sorted(_IMAGE_EXTENSIONS))})"
            )
        entries.sort()
        files.append(entries)
    return classes, files


def _load_folder(train_dir: Path, test_dir: Path, cache: Path) -> _Raw:
    """Decode train/test class folders once (in a process pool) and keep them as a uint8 .npz."""
    train_classes, train_files = _list_split(train_dir)
    test_classes, test_files = _list_split(test_dir)
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"{train_dir.parent}: train and test class folders differ "
            f"(only in train: {', '.join(only_train) or '-'}; only in test: {', '.join(only_test) or '-'})"
        )

    h = hashlib.sha256(f"{_CACHE_VERSION}\n{train_dir.resolve()}\n{test_dir.resolve()}\n".encode())
    for split_files in (train_files, test_files):
        for cls, entries in zip(train_classes, split_files):
            h.update(f"[{cls}]\n".encode())
            for path, size, mtime in entries:
                h.update(f"{os.path.basename(path)}\t{size}\t{mtime}\n".encode())
    # One stem per folder pair, so that a rewrite can drop the stale files of that pair.
    stem = _slug(train_dir.resolve().parent.name) + "-" + _digest(f"{train_dir.resolve()}|{test_dir.resolve()}")[:8]
    cache_file: Path | None = cache / f"folder-{stem}-{h.hexdigest()[:16]}.npz"
    n_files = sum(map(len, train_files)) + sum(map(len, test_files))

    arrays = _read_cache(cache_file, ("x_train", "y_train", "x_test", "y_test"))
    hit = arrays is not None
    seconds = None
    if arrays is None:
        t0 = time.perf_counter()
        arrays = _decode_splits(train_files, test_files)
        seconds = round(time.perf_counter() - t0, 3)
        for stale in cache.glob(f"folder-{stem}-*.npz"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
        if not _write_cache(cache_file, arrays):
            cache_file = None
    channels = arrays["x_train"].shape[1]
    return _Raw(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
        classes=train_classes,
        meta={
            "source": f"{train_dir.resolve()} | {test_dir.resolve()}",
            "files": n_files,
            "mode": "L" if channels == 1 else "RGB",
            "cache_file": str(cache_file) if cache_file else None,
            "cache_hit": hit,
            "decode_seconds": seconds,
        },
    )


def _decode_splits(
    train_files: list[list[tuple[str, int, int]]], test_files: list[list[tuple[str, int, int]]]
) -> dict[str, np.ndarray]:
    """Decode both splits in one pool; one channel count and one size for all images."""
    paths: list[str] = []
    labels: list[int] = []
    for split_files in (train_files, test_files):
        for label, entries in enumerate(split_files):
            paths.extend(p for p, _, _ in entries)
            labels.extend([label] * len(entries))
    x = _decode_images(paths)  # N×H×W×C
    n_train = sum(map(len, train_files))
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y = np.asarray(labels, dtype=np.int64)
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def _decode_images(paths: list[str]) -> np.ndarray:
    """All images as one uint8 N×H×W×C array (C = 1 if every image is greyscale, else 3)."""
    workers = _worker_count()
    parts: list[np.ndarray] = []
    if workers > 1 and len(paths) >= _POOL_MIN_FILES:
        n_chunks = workers * 8  # several per worker so that a slow chunk does not idle the rest
        size = math.ceil(len(paths) / n_chunks)
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        # fork: workers start in milliseconds and need nothing re-imported; they only run
        # PIL/numpy (as torch's own DataLoader workers do), so forking a torch process is safe.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork") if "fork" in methods else None
        try:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            try:
                for ok, array, message in pool.map(_decode_chunk, chunks):
                    if not ok:
                        raise DataError(message)
                    parts.append(array)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        except (OSError, BrokenProcessPool) as e:
            # no pool where processes cannot be started (sandbox, no /dev/shm) or a worker was
            # killed: slower, but the result is the same.
            log.warning("decoding without a process pool (%s)", e)
            parts = []
    if not parts:
        ok, array, message = _decode_chunk(paths)
        if not ok:
            raise DataError(message)
        parts = [array]

    h, w = parts[0].shape[1:3]
    for chunk, part in zip(_chunk_firsts(paths, parts), parts):
        if part.shape[1:3] != (h, w):
            raise DataError(
                f"{chunk}: image is {part.shape[2]}x{part.shape[1]} but {paths[0]} is {w}x{h}; "
                "all images must have one size"
            )
    if any(p.shape[3] == 3 for p in parts):
        parts = [np.repeat(p, 3, axis=3) if p.shape[3] == 1 else p for p in parts]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _chunk_firsts(paths: list[str], parts: list[np.ndarray]) -> list[str]:
    firsts, i = [], 0
    for p in parts:
        firsts.append(paths[i])
        i += len(p)
    return firsts


def _decode_chunk(paths: list[str]) -> tuple[bool, np.ndarray | None, str]:
    """Decode a list of image files (in a worker): (True, N×H×W×C uint8, "") or (False, None, why).

    Errors come back as text rather than exceptions so that nothing depends on pickling an
    exception across the process boundary. Greyscale modes become "L", all others "RGB"
    (palette, CMYK, alpha dropped); a chunk holding both is returned as RGB.
    """
    from PIL import Image

    out: np.ndarray | None = None
    first = ""
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                target = "L" if im.mode in _GREY_MODES else "RGB"
                img = im if im.mode == target else im.convert(target)
                # tobytes + frombuffer: about twice as fast as np.asarray(im) for small images.
                data = np.frombuffer(img.tobytes(), dtype=np.uint8)
                w, h = img.size
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError… for broken files
            return False, None, f"{path}: corrupt or unreadable image ({type(e).__name__}: {e})"
        c = 1 if target == "L" else 3
        if out is None:
            out = np.empty((len(paths), h, w, c), dtype=np.uint8)
            first = path
        elif (h, w) != out.shape[1:3]:
            return False, None, (
                f"{path}: image is {w}x{h} but {first} is {out.shape[2]}x{out.shape[1]}; "
                "all images must have one size"
            )
        if c == 3 and out.shape[3] == 1:
            out = np.repeat(out, 3, axis=3)
        out[i] = data.reshape(h, w, c)  # a grey image broadcasts into an RGB chunk
    assert out is not None
    return True, out, ""


def _worker_count() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


# ---------------------------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# standard sets: CIFAR binary and MNIST idx files
# ---------------------------------------------------------------------------------------------

_CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup "
    "dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower "
    "leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid "
    "otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower "
    "sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale "
    "willow_tree wolf woman worm"
).split()
_FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
]


@dataclass(frozen=True)
class _Remote:
    """One official file: its name, MD5 and the URLs to try in order."""

    filename: str
    md5: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class _Standard:
    subdirs: tuple[str, ...]  # where under the root to look, before the root itself
    download_to: str  # sub-folder the downloaded files end up in ("" = the root, for archives)
    remotes: tuple[_Remote, ...]
    archive: bool  # True: the remote is a .tar.gz to extract into the root
    describe: str


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _idx_remotes(bases: tuple[str, ...], md5s: dict[str, str]) -> tuple[_Remote, ...]:
    return tuple(_Remote(f, m, tuple(b + f for b in bases)) for f, m in md5s.items())


_STANDARD: dict[str, _Standard] = {
    "cifar10": _Standard(
        ("cifar-10-batches-bin",), "",
        (_Remote("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                 ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)),),
        True, "the CIFAR-10 binary version (cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin)",
    ),
    "cifar100": _Standard(
        ("cifar-100-binary",), "",
        (_Remote("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
                 ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",)),),
        True, "the CIFAR-100 binary version (cifar-100-binary/train.bin, test.bin)",
    ),
    "mnist": _Standard(
        ("mnist", "MNIST/raw"), "mnist",
        _idx_remotes(_MNIST_MIRRORS, {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        }),
        False, "the MNIST idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-…)",
    ),
    "fashion_mnist": _Standard(
        ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw"), "fashion_mnist",
        _idx_remotes((_FASHION_BASE,), {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        }),
        False, "the Fashion-MNIST idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-…)",
    ),
}


def _load_standard(name: str, root: Path, download: bool) -> _Raw:
    std = _STANDARD[name]
    candidates = [root / s for s in std.subdirs] + [root]
    found = _find_standard(name, candidates)
    if found is None and download:
        _download(name, root)
        found = _find_standard(name, candidates)
    if found is None:
        looked = ", ".join(str(c) for c in candidates)
        raise DataError(
            f"{name}: files not found (looked in {looked}); put {std.describe} there, point ACTLAB_DATA "
            f"or '{name}=DIR' at them, or pass download=True (actlab: --download) to fetch them"
        )
    if name.startswith("cifar"):
        raw = _read_cifar(name, found)
    else:
        raw = _read_idx_set(found, _FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)])
    raw.meta["source"] = str(found.resolve())
    return raw


def _find_standard(name: str, candidates: list[Path]) -> Path | None:
    for d in candidates:
        if not d.is_dir():
            continue
        if name == "cifar10":
            needed = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
            if all((d / f).is_file() for f in needed):
                return d
        elif name == "cifar100":
            if (d / "train.bin").is_file() and (d / "test.bin").is_file():
                return d
        elif all(_idx_file(d, base) is not None for base in _IDX_BASES):
            return d
    return None


_IDX_BASES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_file(d: Path, base: str) -> Path | None:
    """The file for ``base`` in ``d``: plain or .gz, with '-idx' or '.idx' (both spellings circulate)."""
    for stem in (base, base.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            p = d / (stem + suffix)
            if p.is_file():
                return p
    return None


def _read_idx_set(d: Path, classes: list[str]) -> _Raw:
    paths = {base: _idx_file(d, base) for base in _IDX_BASES}
    x_train, y_train, x_test, y_test = (_read_idx(p) for p in paths.values())  # type: ignore[arg-type]
    for key, x in (("train images", x_train), ("test images", x_test)):
        if x.ndim != 3:
            raise DataError(f"{d}: {key} idx file has {x.ndim} dimensions; expected 3 (N×H×W)")
    for key, y in (("train labels", y_train), ("test labels", y_test)):
        if y.ndim != 1:
            raise DataError(f"{d}: {key} idx file has {y.ndim} dimensions; expected 1")
    return _Raw(
        x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64),
        classes=classes, meta={"files": [p.name for p in paths.values()]},  # type: ignore[union-attr]
    )


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (LeCun's format: magic 0 0 0x08 ndim, big-endian int32 dims, unsigned bytes)."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{path}: idx data type 0x{data[2]:02x} is not supported (only unsigned bytes, 0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims)
    if len(data) - header != expected:
        raise DataError(f"{path}: idx header promises {expected} bytes of data, file has {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_cifar(name: str, d: Path) -> _Raw:
    if name == "cifar10":
        train_files = [d / f"data_batch_{i}.bin" for i in range(1, 6)]
        test_file, label_bytes, names_file, default = d / "test_batch.bin", 1, d / "batches.meta.txt", _CIFAR10_CLASSES
    else:
        train_files = [d / "train.bin"]
        test_file, label_bytes, names_file, default = d / "test.bin", 2, d / "fine_label_names.txt", _CIFAR100_CLASSES
    parts = [_read_cifar_bin(p, label_bytes) for p in train_files]
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    x_test, y_test = _read_cifar_bin(test_file, label_bytes)
    classes = default
    if names_file.is_file():
        listed = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(listed) == len(default):
            classes = listed
    meta = {"label": "fine" if label_bytes == 2 else "label"}
    return _Raw(x_train, y_train, x_test, y_test, list(classes), meta=meta)


def _read_cifar_bin(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Records of label byte(s) + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major 32×32).

    CIFAR-100 has two label bytes, coarse then fine; the fine label (100 classes) is used.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + 3072
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records")
    rows = raw.reshape(-1, record)
    return np.ascontiguousarray(rows[:, label_bytes:]).reshape(-1, 3, 32, 32), rows[:, label_bytes - 1].astype(np.int64)


def _download(name: str, root: Path) -> None:
    """Fetch the official files of ``name`` into ``root`` (checked by MD5), extracting archives."""
    std = _STANDARD[name]
    dest = root / std.download_to if std.download_to else root
    dest.mkdir(parents=True, exist_ok=True)
    for remote in std.remotes:
        target = dest / remote.filename
        if not (target.is_file() and _md5(target) == remote.md5):
            _fetch(remote, target)
        if std.archive:
            try:
                with tarfile.open(target) as tar:
                    # filter="data" refuses absolute paths, links out of the tree, devices.
                    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    tar.extractall(root, **extra)
            except (tarfile.TarError, OSError) as e:
                raise DataError(f"{target}: cannot extract ({e})") from None
            target.unlink()


def _fetch(remote: _Remote, target: Path) -> None:
    failures = []
    part = target.with_name(target.name + ".part")
    for url in remote.urls:
        log.info("downloading %s", url)
        md5 = hashlib.md5()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
                while chunk := response.read(1 << 20):
                    md5.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as e:
            failures.append(f"{url}: {e}")
            continue
        if md5.hexdigest() != remote.md5:
            failures.append(f"{url}: MD5 {md5.hexdigest()} != {remote.md5}")
            continue
        os.replace(part, target)
        return
    part.unlink(missing_ok=True)
    raise DataError(f"download of {remote.filename} failed: {'; '.join(failures)}")


def _md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()


# ---------------------------------------------------------------------------------------------
# cache files
# ---------------------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "data"


def _read_cache(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None if it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys}
    except Exception as e:  # a truncated or foreign file: rebuild rather than fail
        log.warning("ignoring unreadable cache file %s (%s)", path, e)
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write atomically (temp file + rename) so that a killed run never leaves half a cache."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        return True
    except OSError as e:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"actlab: could not write the data cache {path} ({e}); continuing without it", stacklevel=3)
        return False
