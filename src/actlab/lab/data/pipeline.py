"""The common pipeline every source ends in (:func:`load`): spec → source → checks → subset →
validation split → per-channel normalisation with training statistics → float32 / int64 tensors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .builtin import _load_digits, _load_mnist1d
from .cache import _cache_dir
from .common import DataError, _Raw, _stratified_order
from .folders import _load_folder, _train_test_dirs
from .npz import _load_npz
from .standard import STANDARD_NAMES as _STANDARD_NAMES
from .standard import _load_standard

__all__ = ["Dataset", "load", "builtin_names", "DEFAULT_SPEC", "SPEC_HELP"]

DEFAULT_SPEC = "digits"

SPEC_HELP = (
    "digits (default) | mnist1d | cifar10 | cifar100 | mnist | fashion_mnist | NAME=DIR | "
    "an image folder with train/ and test/ (or training/ and testing/) class sub-folders | "
    "train=DIR,test=DIR | a .npz file with x_train, y_train, x_test, y_test"
)

_BUILTIN_NAMES = ("digits", "mnist1d") + _STANDARD_NAMES


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
