"""The data sets ``actlab verify`` runs on: digits, mnist1d, a CIFAR-10 subset, and any ``--data``.

The CIFAR-10 folder (JPEGs in ``train/<class>/`` and ``test/<class>/``) is found, in order, at
``$ACTLAB_CIFAR10_DIR``, then at ``shared/data/cifar10-jpeg`` beside the repository or beside its
parent folder (a worktree). It is never downloaded; when absent, the report says so and the
claims run on what is there.

Image folders (and any data set other than digits and mnist1d) are cut to a class-stratified
subset of the training set and of the test set and written once as an ``.npz`` under
``OUT/data/`` (the lab evaluates the whole test set after every epoch: the full 10 000 CIFAR
test images would cost more than the training). The file's name carries its sizes, so a rerun
finds it and the runs' keys stay the same (resume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lab import data, models

__all__ = ["Source", "cifar_dir", "resolve", "CIFAR_ENV", "BUILTIN"]

CIFAR_ENV = "ACTLAB_CIFAR10_DIR"
BUILTIN = ("digits", "mnist1d")
_REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Source:
    """One data set as verify uses it: ``spec`` and ``subset`` go into the run specs."""

    label: str  # the name in the report
    spec: str
    subset: int | None
    kind: str  # "image" | "signal" | "vector"
    input_shape: tuple[int, ...]
    note: str = ""

    @property
    def model(self) -> str:
        """The lab model that fits the data's shape (cnn, cnn1d or mlp)."""
        return models.default_for(self.input_shape)


def cifar_dir() -> Path | None:
    """The CIFAR-10 JPEG folder, or None where there is none (see the module docstring)."""
    candidates = [os.environ.get(CIFAR_ENV)] if os.environ.get(CIFAR_ENV) else []
    candidates += [root / "shared" / "data" / "cifar10-jpeg" for root in (_REPO.parent, _REPO.parent.parent)]
    for c in candidates:
        p = Path(c).expanduser()
        if (p / "train").is_dir() and (p / "test").is_dir():
            return p
    return None


def _kind(shape: tuple[int, ...]) -> str:
    return {3: "image", 2: "signal", 1: "vector"}[len(shape)]


def _stratified(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n indices of y, classes in proportion, drawn with a fixed seed; sorted."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}
    # round robin over the classes: the first n keep the classes' proportions (within one)
    rounds = max(map(len, per.values()))
    order = np.concatenate([np.stack([per[c][i] for c in classes if i < len(per[c])]) for i in range(rounds)])
    return np.sort(order[:n])


def _derived(ds: data.Dataset, test: int, path: Path) -> Path:
    """Write (once) ``ds`` with ``test`` test examples as uint8 (or float32) ``.npz`` at ``path``."""
    if path.is_file():
        return path
    norm = ds.meta["normalisation"]
    shape = (1, -1) + (1,) * (ds.x_train.dim() - 2)
    mean = np.asarray(norm["mean"], dtype=np.float64).reshape(shape)
    std = np.asarray(norm["std"], dtype=np.float64).reshape(shape)

    def raw(x: np.ndarray) -> np.ndarray:
        back = x.astype(np.float64) * std + mean
        as_int = np.rint(back)
        if np.abs(back - as_int).max() < 0.05 and as_int.min() >= 0 and as_int.max() <= 255:
            return as_int.astype(np.uint8)
        return back.astype(np.float32)

    y_test = ds.y_test.numpy()
    keep = _stratified(y_test, test, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    x_train, x_test = raw(ds.x_train.numpy()), raw(ds.x_test.numpy()[keep])
    if x_train.dtype != x_test.dtype:
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    np.savez(tmp, x_train=x_train, y_train=ds.y_train.numpy(), x_test=x_test, y_test=y_test[keep],
             classes=np.asarray(ds.classes))
    os.replace(tmp, path)
    return path


def resolve(extra: list[str], *, image_train: int | None, image_test: int | None, directory: Path,
            include_cifar: bool = True, digits_only: bool = False) -> tuple[list[Source], list[str]]:
    """The data sets of a verify run and notes on what is missing.

    ``extra``: the user's ``--data`` specs, added after digits, mnist1d and CIFAR-10. Everything but
    digits and mnist1d is cut to ``image_train`` / ``image_test`` examples (None: all).
    """
    notes: list[str] = []
    wanted: list[tuple[str, str]] = [("digits", "digits"), ("mnist1d", "mnist1d")]
    if digits_only:  # the claims chosen need no other data set: load nothing else
        shape = tuple(data.load("digits", val_fraction=0.0).input_shape)
        return [Source("digits", "digits", None, _kind(shape), shape)], notes
    if include_cifar:
        found = cifar_dir()
        if found is None:
            notes.append(f"CIFAR-10 folder not found (set ${CIFAR_ENV} or pass --data DIR); "
                         f"claims that want images run on what is here")
        else:
            wanted.append(("cifar10", str(found)))
    for spec in extra:
        label = Path(str(spec).split("=", 1)[-1].rstrip("/\\")).stem or "data"
        if any(spec == s for _, s in wanted):
            continue
        wanted.append((label, spec))
    sources = []
    for label, spec in wanted:
        if spec in BUILTIN:
            shape = tuple(data.load(spec, val_fraction=0.0).input_shape)
            sources.append(Source(label, spec, None, _kind(shape), shape))
            continue
        known = directory / f"{label}-train{image_train}-test{image_test}.npz"
        if image_train and image_test and known.is_file():  # made by an earlier run: reuse it as it is
            ds = data.load(str(known), val_fraction=0.0)
            sources.append(Source(f"{label} ({len(ds.y_train)}/{len(ds.y_test)})", str(known.resolve()), None,
                                  _kind(tuple(ds.input_shape)), tuple(ds.input_shape),
                                  note=f"a class-stratified subset of {spec} (fixed seed 0), written earlier"))
            continue
        # checks the spec; a folder is decoded once into the lab's cache ($ACTLAB_CACHE)
        ds = data.load(spec, subset=image_train, val_fraction=0.0, seed=0)
        shape = tuple(ds.input_shape)
        n_train, n_test = ds.meta["official_sizes"]["train"], ds.meta["official_sizes"]["test"]
        train = len(ds.y_train)
        test = min(n_test, image_test) if image_test else n_test
        if (train, test) == (n_train, n_test):
            sources.append(Source(label, spec, None, _kind(shape), shape, note=f"{spec}: all {n_train}/{n_test}"))
        else:
            path = _derived(ds, test, known)
            sources.append(Source(f"{label} ({train}/{test})", str(path.resolve()), None, _kind(shape), shape,
                                  note=f"a class-stratified subset of {spec}: {train} of {n_train} training and "
                                       f"{test} of {n_test} test examples (fixed seed 0)"))
    return sources, notes
