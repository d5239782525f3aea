"""Tests of actlab.lab.data on data the tests make, plus the bundled digits and mnist1d."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import struct
import tarfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actlab.lab import data
from actlab.lab.data import common, folders, standard
from actlab.lab.data import DataError

CIFAR_JPEG = Path("/work/shared/data/cifar10-jpeg")


# ---------------------------------------------------------------------------------------------
# helpers: tiny data sets written by the tests
# ---------------------------------------------------------------------------------------------


def pixels(label: int, index: int, size: tuple[int, int], channels: int) -> np.ndarray:
    """A deterministic H×W×C uint8 image, different for every (label, index)."""
    w, h = size
    rng = np.random.default_rng([label, index])
    img = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return img


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    img = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    if mode is not None:
        img = img.convert(mode)
    img.save(path)


def make_folder(
    root: Path,
    splits: tuple[str, str] = ("train", "test"),
    classes: tuple[str, ...] = ("cat", "ant", "bee"),
    counts: tuple[int, int] = (6, 2),
    size: tuple[int, int] = (5, 4),
    channels: int = 3,
    ext: str = ".png",
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``root/<split>/<class>/NNN<ext>``; return the expected N×C×H×W arrays and labels
    in the loader's order (classes sorted, files sorted)."""
    expected = {}
    for split, n in zip(splits, counts):
        xs, ys = [], []
        for label, cls in enumerate(sorted(classes)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = pixels(label + (100 if split == splits[1] else 0), i, size, channels)
                write_image(d / f"{i:03d}{ext}", arr)
                xs.append(arr.transpose(2, 0, 1))
                ys.append(label)
        expected[split] = (np.stack(xs), np.array(ys))
    return expected


def denormalise(x: torch.Tensor, ds: data.Dataset) -> np.ndarray:
    norm = ds.meta["normalisation"]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = torch.tensor(norm["mean"], dtype=torch.float64).view(shape)
    std = torch.tensor(norm["std"], dtype=torch.float64).view(shape)
    return (x.double() * std + mean).numpy()


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(d: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, dotted: bool = False) -> dict:
    """Tiny MNIST-format idx files; returns the arrays written."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    for name, arr in arrays.items():
        fname = name.replace("-idx", ".idx") if dotted else name
        payload = idx_bytes(arr)
        if gz:
            (d / (fname + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (d / fname).write_bytes(payload)
    return arrays


def cifar_records(n: int, label_bytes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10 if label_bytes == 1 else 100, (n, label_bytes), dtype=np.uint8)
    raw = np.concatenate([labels, x.reshape(n, -1)], axis=1).tobytes()
    return raw, x, labels[:, -1].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# image folders
# ---------------------------------------------------------------------------------------------


def test_png_folder_train_test_decodes_exactly_in_sorted_order(tmp_path):
    expected = make_folder(tmp_path / "set", size=(5, 4))
    ds = data.load(str(tmp_path / "set"), val_fraction=0)
    assert ds.classes == ["ant", "bee", "cat"]
    assert ds.input_shape == (3, 4, 5)  # C, H, W
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.num_classes == 3 and len(ds.y_val) == 0 and ds.x_val.shape == (0, 3, 4, 5)
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        np.testing.assert_allclose(denormalise(x, ds), expected[split][0], atol=1e-3)
        assert y.tolist() == expected[split][1].tolist()
    assert ds.name == str((tmp_path / "set").resolve())
    assert ds.meta["kind"] == "folder" and ds.meta["mode"] == "RGB" and ds.meta["files"] == 24


def test_jpeg_folder_training_testing_greyscale(tmp_path):
    expected = make_folder(tmp_path / "g", ("training", "testing"), channels=1, ext=".jpg", size=(8, 8))
    ds = data.load(str(tmp_path / "g"), val_fraction=0)
    assert ds.input_shape == (1, 8, 8) and ds.meta["mode"] == "L"
    assert len(ds.y_train) == 18 and len(ds.y_test) == 6
    # JPEG is lossy: close to the written pixels on average, not equal.
    err = np.abs(denormalise(ds.x_train, ds) - expected["training"][0]).mean()
    assert err < 20


def test_explicit_train_test_spec(tmp_path):
    make_folder(tmp_path / "a", ("tr", "te"))
    spec = f"train={tmp_path / 'a' / 'tr'},test={tmp_path / 'a' / 'te'}"
    ds = data.load(spec, val_fraction=0)
    assert len(ds.y_train) == 18 and len(ds.y_test) == 6
    assert ds.name.startswith("train=/") and ",test=/" in ds.name


def test_mixed_modes_become_rgb_grey_replicated(tmp_path):
    root = tmp_path / "mixed"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
    grey = np.full((4, 4, 1), 77, np.uint8)
    write_image(root / "train" / "a" / "0.png", grey)  # L
    write_image(root / "train" / "a" / "1.png", pixels(0, 1, (4, 4), 3), "RGBA")
    write_image(root / "train" / "b" / "0.png", pixels(1, 0, (4, 4), 3), "P")
    write_image(root / "test" / "a" / "0.png", grey)
    write_image(root / "test" / "b" / "0.png", pixels(1, 1, (4, 4), 3))
    ds = data.load(str(root), val_fraction=0)
    assert ds.input_shape == (3, 4, 4) and ds.meta["mode"] == "RGB"
    np.testing.assert_allclose(denormalise(ds.x_train, ds)[0], 77, atol=1e-3)


def test_different_sizes_is_an_error_naming_both(tmp_path):
    make_folder(tmp_path / "s", size=(5, 4))
    write_image(tmp_path / "s" / "train" / "bee" / "zzz.png", pixels(0, 0, (6, 4), 3))
    with pytest.raises(DataError, match=r"zzz\.png: image is 6x4 but .* is 5x4; all images must have one size"):
        data.load(str(tmp_path / "s"))


def test_class_folders_must_match(tmp_path):
    make_folder(tmp_path / "m")
    (tmp_path / "m" / "test" / "cat").rename(tmp_path / "m" / "test" / "cow")
    with pytest.raises(DataError, match=r"class folders differ \(only in train: cat; only in test: cow\)"):
        data.load(str(tmp_path / "m"))


def test_empty_class_folder(tmp_path):
    make_folder(tmp_path / "e")
    (tmp_path / "e" / "train" / "dog").mkdir()
    (tmp_path / "e" / "train" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"dog: empty class folder"):
        data.load(str(tmp_path / "e"))


def test_corrupt_image_names_the_file(tmp_path):
    make_folder(tmp_path / "c")
    (tmp_path / "c" / "test" / "ant" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png: corrupt or unreadable image"):
        data.load(str(tmp_path / "c"))


def test_truncated_jpeg_is_corrupt(tmp_path):
    make_folder(tmp_path / "t", ext=".jpg", size=(16, 16))
    victim = tmp_path / "t" / "train" / "bee" / "001.jpg"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(DataError, match=r"001\.jpg: corrupt or unreadable image"):
        data.load(str(tmp_path / "t"))


def test_folder_without_split_subfolders(tmp_path):
    (tmp_path / "flat" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"needs train/ and test/ \(or training/ and testing/\).*found cat"):
        data.load(str(tmp_path / "flat"))


def test_pool_decode_equals_serial(tmp_path, monkeypatch):
    make_folder(tmp_path / "p", counts=(20, 4), size=(6, 6))
    serial = data.load(str(tmp_path / "p"), val_fraction=0, cache_dir=tmp_path / "c1")
    monkeypatch.setattr(folders, "_POOL_MIN_FILES", 1)
    monkeypatch.setattr(folders, "_worker_count", lambda: 2)
    pools = []

    class RecordingPool(ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(folders, "ProcessPoolExecutor", RecordingPool)
    pooled = data.load(str(tmp_path / "p"), val_fraction=0, cache_dir=tmp_path / "c2")
    assert pools == [2]
    assert torch.equal(serial.x_train, pooled.x_train) and torch.equal(serial.x_test, pooled.x_test)


def test_no_pool_falls_back_to_serial(tmp_path, monkeypatch):
    make_folder(tmp_path / "np", counts=(4, 2))
    monkeypatch.setattr(folders, "_POOL_MIN_FILES", 1)
    monkeypatch.setattr(folders, "_worker_count", lambda: 2)

    def no_processes(*args, **kwargs):
        raise OSError("no /dev/shm here")

    monkeypatch.setattr(folders, "ProcessPoolExecutor", no_processes)
    ds = data.load(str(tmp_path / "np"), val_fraction=0)
    assert len(ds.y_train) == 12 and ds.meta["cache_hit"] is False


def test_pool_reports_a_corrupt_file(tmp_path, monkeypatch):
    make_folder(tmp_path / "pc", counts=(10, 2))
    (tmp_path / "pc" / "train" / "cat" / "bad.png").write_bytes(b"junk")
    monkeypatch.setattr(folders, "_POOL_MIN_FILES", 1)
    monkeypatch.setattr(folders, "_worker_count", lambda: 2)
    with pytest.raises(DataError, match=r"bad\.png: corrupt or unreadable image"):
        data.load(str(tmp_path / "pc"))


# ---------------------------------------------------------------------------------------------
# the decode cache
# ---------------------------------------------------------------------------------------------


def test_cache_is_reused_without_decoding(tmp_path, monkeypatch):
    make_folder(tmp_path / "f")
    first = data.load(str(tmp_path / "f"))
    cache_file = Path(first.meta["cache_file"])
    assert first.meta["cache_hit"] is False and cache_file.is_file()
    assert cache_file.parent == tmp_path / "cache"  # $ACTLAB_CACHE from conftest

    def no_decode(*a, **k):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(folders, "_decode_splits", no_decode)
    second = data.load(str(tmp_path / "f"))
    assert second.meta["cache_hit"] is True and second.meta["cache_file"] == str(cache_file)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


def test_cache_invalidated_by_new_or_touched_files(tmp_path):
    make_folder(tmp_path / "f")
    first = data.load(str(tmp_path / "f"), val_fraction=0)
    # a new image: different file count
    write_image(tmp_path / "f" / "train" / "ant" / "new.png", pixels(9, 9, (5, 4), 3))
    second = data.load(str(tmp_path / "f"), val_fraction=0)
    assert second.meta["cache_hit"] is False and len(second.y_train) == len(first.y_train) + 1
    assert second.meta["cache_file"] != first.meta["cache_file"]
    assert not Path(first.meta["cache_file"]).exists()  # the stale file of this folder is dropped
    assert data.load(str(tmp_path / "f"), val_fraction=0).meta["cache_hit"] is True
    # a touched file: same name, size and content, new mtime
    victim = tmp_path / "f" / "test" / "bee" / "000.png"
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = data.load(str(tmp_path / "f"), val_fraction=0)
    assert third.meta["cache_hit"] is False and torch.equal(second.x_test, third.x_test)
    # rewritten content
    write_image(victim, np.zeros((4, 5, 3), np.uint8))
    fourth = data.load(str(tmp_path / "f"), val_fraction=0)
    assert fourth.meta["cache_hit"] is False
    assert not torch.equal(third.x_test, fourth.x_test)


def test_unreadable_cache_file_is_rebuilt(tmp_path):
    make_folder(tmp_path / "f")
    first = data.load(str(tmp_path / "f"))
    Path(first.meta["cache_file"]).write_bytes(b"garbage")
    again = data.load(str(tmp_path / "f"))
    assert again.meta["cache_hit"] is False and torch.equal(first.x_train, again.x_train)
    assert data.load(str(tmp_path / "f")).meta["cache_hit"] is True


def test_explicit_cache_dir_wins_over_env(tmp_path):
    make_folder(tmp_path / "f")
    ds = data.load(str(tmp_path / "f"), cache_dir=tmp_path / "mine")
    assert Path(ds.meta["cache_file"]).parent == tmp_path / "mine"


# ---------------------------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------------------------


def test_npz_channels_last_to_nchw(tmp_path):
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (10, 4, 6, 3), dtype=np.uint8)  # N×H×W×C
    xte = rng.integers(0, 256, (4, 4, 6, 3), dtype=np.uint8)
    p = save_npz(tmp_path / "d.npz", x_train=xtr, y_train=np.arange(10)[:, None] % 3,  # Keras N×1 labels
                 x_test=xte, y_test=np.array([0, 1, 2, 0]))
    ds = data.load(str(p), val_fraction=0)
    assert ds.input_shape == (3, 4, 6) and ds.classes == ["0", "1", "2"]
    np.testing.assert_allclose(denormalise(ds.x_train, ds), xtr.transpose(0, 3, 1, 2), atol=1e-3)
    assert ds.y_train.tolist() == [i % 3 for i in range(10)]
    assert ds.meta["layout"] == "N×H×W×C" and ds.meta["kind"] == "npz"


def test_npz_greyscale_and_channels_first(tmp_path):
    x = np.random.default_rng(1).random((8, 5, 5)).astype(np.float32)
    p = save_npz(tmp_path / "g.npz", x_train=x, y_train=np.arange(8) % 2, x_test=x[:3], y_test=np.zeros(3, int))
    assert data.load(str(p)).input_shape == (1, 5, 5)
    xc = np.random.default_rng(2).random((8, 3, 7, 7))  # already N×C×H×W
    p = save_npz(tmp_path / "c.npz", x_train=xc, y_train=np.arange(8) % 2, x_test=xc[:2], y_test=np.ones(2, int))
    ds = data.load(str(p), val_fraction=0)
    assert ds.input_shape == (3, 7, 7) and ds.meta["layout"] == "N×C×H×W"
    np.testing.assert_allclose(denormalise(ds.x_train, ds), xc, atol=1e-5)


def test_npz_2d_features_are_standardised_per_feature(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(loc=[1.0, -50.0, 1000.0], scale=[0.1, 5.0, 300.0], size=(200, 3))
    x[:, 2] = 4.0  # constant feature: left unscaled, not divided by 0
    p = save_npz(tmp_path / "f.npz", x_train=x, y_train=rng.integers(0, 4, 200), x_test=x[:10],
                 y_test=np.arange(10) % 4, classes=np.array(["w", "x", "y", "z"]))
    ds = data.load(str(p), val_fraction=0)
    assert ds.input_shape == (3,) and ds.classes == ["w", "x", "y", "z"]
    assert torch.allclose(ds.x_train.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(ds.x_train[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.all(ds.x_train[:, 2] == 0) and ds.meta["normalisation"]["std"][2] == 1.0


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x_train=np.zeros((4, 3)), y_train=np.zeros(4, int), x_test=np.zeros((2, 3))),
         r"missing array\(s\) y_test; needs x_train, y_train, x_test, y_test \(has x_train, y_train, x_test\)"),
        (dict(x_train=np.zeros((4, 3)), y_train=np.zeros(5, int), x_test=np.zeros((2, 3)), y_test=np.zeros(2, int)),
         r"x_train has 4 rows but y_train has 5"),
        (dict(x_train=np.zeros(4), y_train=np.zeros(4, int), x_test=np.zeros(2), y_test=np.zeros(2, int)),
         r"x_train has shape \(4,\); expected N×D features, N×H×W or N×H×W×C images"),
        (dict(x_train=np.zeros((4, 2, 2, 2, 2)), y_train=np.zeros(4, int), x_test=np.zeros((2, 2, 2, 2, 2)),
              y_test=np.zeros(2, int)), r"x_train has shape \(4, 2, 2, 2, 2\)"),
        (dict(x_train=np.zeros((4, 3)), y_train=np.zeros(4, int), x_test=np.zeros((2, 3, 3)), y_test=np.zeros(2, int)),
         r"x_test has shape \(2, 3, 3\) but x_train is N×D features"),
        (dict(x_train=np.zeros((4, 3)), y_train=np.zeros(4, int), x_test=np.zeros((2, 4)), y_test=np.zeros(2, int)),
         r"train examples have shape \(3,\) but test examples \(4,\)"),
        (dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, -1, 0]), x_test=np.zeros((2, 3)),
              y_test=np.zeros(2, int)), r"y_train has label -1 outside 0\.\.1"),
        (dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 2, 0]), x_test=np.zeros((2, 3)),
              y_test=np.array([0, 3]), classes=np.array(["a", "b", "c"])),
         r"y_test has label 3 outside 0\.\.2 \(3 classes\)"),
        (dict(x_train=np.zeros((4, 3)), y_train=np.array([0.5, 1, 0, 0]), x_test=np.zeros((2, 3)),
              y_test=np.zeros(2, int)), r"y_train must hold integer class indices"),
        (dict(x_train=np.full((4, 3), np.nan), y_train=np.zeros(4, int), x_test=np.zeros((2, 3)),
              y_test=np.zeros(2, int)), r"x_train contains NaN or inf"),
        (dict(x_train=np.array(["a", "b"]), y_train=np.zeros(2, int), x_test=np.array(["c"]), y_test=np.zeros(1, int)),
         r"x_train has dtype <U1; numbers are needed"),
        (dict(x_train=np.zeros((0, 3)), y_train=np.zeros(0, int), x_test=np.zeros((2, 3)), y_test=np.zeros(2, int)),
         r"the train split is empty"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    p = save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as info:
        data.load(str(p))
    assert "\n" not in str(info.value)


def test_npz_object_array_refused_without_pickle(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x_train=np.array([{"a": 1}] * 2, dtype=object), y_train=np.zeros(2, int),
             x_test=np.zeros((1, 1)), y_test=np.zeros(1, int))
    with pytest.raises(DataError, match=r"obj\.npz: .*allow_pickle"):
        data.load(str(p))


def test_not_an_npz(tmp_path):
    (tmp_path / "fake.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match=r"fake\.npz: cannot read as \.npz"):
        data.load(str(tmp_path / "fake.npz"))
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match=r"single array, not an \.npz archive"):
        data.load(str(tmp_path / "single.npz"))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match=r"unsupported file type \.csv"):
        data.load(str(tmp_path / "x.csv"))


# ---------------------------------------------------------------------------------------------
# specs and options
# ---------------------------------------------------------------------------------------------


def test_unknown_spec_lists_the_choices():
    expected = r"unknown data spec 'cifar11'; valid: digits \(default\) \| mnist1d \| cifar10"
    with pytest.raises(DataError, match=expected) as e:
        data.load("cifar11")
    for name in data.builtin_names():
        assert name in str(e.value)


def test_missing_path_and_bad_pairs(tmp_path):
    with pytest.raises(DataError, match=r"no_such_dir: no such file or folder"):
        data.load(str(tmp_path / "no_such_dir"))
    with pytest.raises(DataError, match=r"nothing\.npz: no such file or folder"):
        data.load("nothing.npz")
    with pytest.raises(DataError, match=r"is not a folder"):
        data.load(f"train={tmp_path / 'x'},test={tmp_path / 'y'}")
    with pytest.raises(DataError, match=r"unknown key\(s\) foo; valid: train=DIR,test=DIR or NAME=DIR"):
        data.load("foo=bar")
    with pytest.raises(DataError, match=r"cannot parse 'test'"):
        data.load("train=a,test")


def test_builtin_names():
    assert data.builtin_names() == ["digits", "mnist1d", "cifar10", "cifar100", "mnist", "fashion_mnist"]
    assert data.DEFAULT_SPEC == "digits"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(subset=0), r"invalid subset=0; valid: None or an int >= 1"),
        (dict(subset=2.5), r"invalid subset=2\.5"),
        (dict(val_fraction=1.0), r"invalid val_fraction=1\.0; valid: a float in \[0, 1\)"),
        (dict(val_fraction=-0.1), r"invalid val_fraction=-0\.1"),
        (dict(seed=-1), r"invalid seed=-1; valid: an int >= 0"),
        (dict(subset=1, val_fraction=0.5), r"val_fraction=0\.5 of 1 training examples leaves none to train on"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(DataError, match=message):
        data.load("digits", **kwargs)


# ---------------------------------------------------------------------------------------------
# subset, validation split, normalisation (on digits: fast and offline)
# ---------------------------------------------------------------------------------------------


def test_digits_shapes_sizes_and_fixed_test_split():
    ds = data.load("digits")
    assert ds.input_shape == (1, 8, 8) and ds.classes == [str(i) for i in range(10)]
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (1213, 135, 449)  # 1797 = 1348 + 449
    other = data.load("digits", seed=5)
    # the test split is fixed whatever the run seed; the validation split follows the seed
    assert torch.equal(ds.y_test, other.y_test)
    np.testing.assert_allclose(denormalise(ds.x_test, ds), denormalise(other.x_test, other), atol=1e-4)
    assert not torch.equal(ds.y_val, other.y_val)
    # stratified: every class near 25 % in test
    counts = torch.bincount(ds.y_test, minlength=10).numpy()
    total = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=10)
    assert np.all(np.abs(counts - 0.25 * total) <= 1)
    json.dumps(ds.meta)  # JSON-serialisable, as run records need


def test_normalisation_uses_training_statistics_only():
    ds = data.load("digits", subset=300, seed=2)
    assert abs(float(ds.x_train.mean())) < 1e-5
    assert abs(float(ds.x_train.std(unbiased=False)) - 1) < 1e-5
    # val / test are shifted and scaled by the *training* numbers, so their own stats differ
    assert abs(float(ds.x_test.mean())) > 1e-3
    norm = ds.meta["normalisation"]
    raw_test = denormalise(ds.x_test, ds)
    assert raw_test.min() > -1e-3 and raw_test.max() < 16 + 1e-3  # digits pixels are 0..16
    full = data.load("digits", seed=2)
    assert norm["mean"] != full.meta["normalisation"]["mean"]  # stats of the subset, not the full set


def test_per_channel_normalisation(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(loc=[10.0, -3.0, 0.5], scale=[2.0, 0.1, 7.0], size=(64, 6, 6, 3)).astype(np.float32)
    p = save_npz(tmp_path / "c.npz", x_train=x, y_train=np.arange(64) % 4, x_test=x[:8], y_test=np.arange(8) % 4)
    ds = data.load(str(p), val_fraction=0.25, seed=1)
    assert torch.allclose(ds.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(ds.x_train.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert not torch.allclose(ds.x_val.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_subset_and_val_sizes_determinism_and_disjointness():
    a = data.load("digits", subset=200, val_fraction=0.2, seed=3)
    b = data.load("digits", subset=200, val_fraction=0.2, seed=3)
    c = data.load("digits", subset=200, val_fraction=0.2, seed=4)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (160, 40, 449)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)
    # stratified subset: 200 of 10 balanced classes → 20 each (train + val)
    per_class = torch.bincount(torch.cat([a.y_train, a.y_val]), minlength=10)
    assert per_class.min() >= 19 and per_class.max() <= 21
    # train and val are disjoint: no validation image appears among the training images
    raw_train = denormalise(a.x_train, a).reshape(len(a.y_train), -1)
    raw_val = denormalise(a.x_val, a).reshape(len(a.y_val), -1)
    train_rows = {tuple(np.round(r).astype(int)) for r in raw_train}
    assert not any(tuple(np.round(r).astype(int)) in train_rows for r in raw_val)
    assert a.meta["sizes"] == {"train": 160, "val": 40, "test": 449} and a.meta["official_sizes"]["train"] == 1348


def test_subset_larger_than_the_set_keeps_everything():
    ds = data.load("digits", subset=10**6, val_fraction=0)
    assert len(ds.y_train) == 1348


def test_val_fraction_zero_gives_empty_val_with_the_right_shape():
    ds = data.load("digits", val_fraction=0)
    assert ds.x_val.shape == (0, 1, 8, 8) and ds.y_val.shape == (0,) and ds.y_val.dtype == torch.int64
    assert len(ds.y_train) == 1348


def test_stratified_order_prefixes_are_proportional():
    y = np.repeat(np.arange(3), [60, 30, 10])
    order = common._stratified_order(y, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(100))
    for k in (10, 20, 50):
        counts = np.bincount(y[order[:k]], minlength=3)
        assert np.all(np.abs(counts - k * np.array([0.6, 0.3, 0.1])) <= 1)


def test_repr_is_a_summary():
    r = repr(data.load("digits", subset=50))
    assert r == "Dataset('digits': train 45, val 5, test 449, input (1, 8, 8), 10 classes)"


# ---------------------------------------------------------------------------------------------
# mnist1d
# ---------------------------------------------------------------------------------------------


def test_mnist1d_shapes_sizes_cache_and_global_rng(mnist1d_cache):
    np.random.seed(123)
    random.seed(123)
    before_np, before_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    ds = data.load("mnist1d", cache_dir=mnist1d_cache)
    # the generator reseeds numpy and random globally; load() must restore them
    assert np.random.random() == before_np and random.random() == before_py
    assert ds.input_shape == (1, 40) and ds.num_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (3600, 400, 1000)
    cache_file = Path(ds.meta["cache_file"])
    assert cache_file.parent == mnist1d_cache and cache_file.name.startswith("mnist1d-")
    again = data.load("mnist1d", cache_dir=mnist1d_cache)
    assert again.meta["cache_hit"] is True and ds.meta["cache_hit"] is False
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)
    assert len(data.load("mnist1d", cache_dir=mnist1d_cache, val_fraction=0).y_train) == 4000


# ---------------------------------------------------------------------------------------------
# standard sets, from tiny files in their usual formats
# ---------------------------------------------------------------------------------------------


def test_mnist_idx_gz_via_explicit_dir(tmp_path):
    arrays = write_mnist(tmp_path / "m", gz=True)
    ds = data.load(f"mnist={tmp_path / 'm'}", val_fraction=0)
    assert ds.input_shape == (1, 28, 28) and ds.classes == [str(i) for i in range(10)]
    np.testing.assert_allclose(denormalise(ds.x_train, ds)[:, 0], arrays["train-images-idx3-ubyte"], atol=1e-3)
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.name == f"mnist={(tmp_path / 'm').resolve()}" and ds.meta["kind"] == "mnist"


def test_fashion_mnist_plain_dotted_files_under_actlab_data(tmp_path):
    root = Path(os.environ["ACTLAB_DATA"])
    arrays = write_mnist(root / "FashionMNIST" / "raw", gz=False, dotted=True)
    ds = data.load("fashion_mnist", val_fraction=0)
    assert ds.name == "fashion_mnist" and ds.classes[0] == "T-shirt/top" and ds.num_classes == 10
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_idx_errors(tmp_path):
    write_mnist(tmp_path / "bad", gz=False)
    p = tmp_path / "bad" / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-5])
    truncated = r"train-images-idx3-ubyte: idx header promises 9408 bytes of data, file has 9403"
    with pytest.raises(DataError, match=truncated):
        data.load(f"mnist={tmp_path / 'bad'}")
    p.write_bytes(b"\x01\x02\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"not an idx file \(bad magic number\)"):
        data.load(f"mnist={tmp_path / 'bad'}")
    p.write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\x00" * 4)
    with pytest.raises(DataError, match=r"idx data type 0x0d is not supported"):
        data.load(f"mnist={tmp_path / 'bad'}")
    write_mnist(tmp_path / "gz", gz=True)
    (tmp_path / "gz" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: cannot read"):
        data.load(f"mnist={tmp_path / 'gz'}")


def test_cifar10_binary(tmp_path):
    d = tmp_path / "c10" / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        raw, x, y = cifar_records(3, 1, seed=i)
        (d / f"data_batch_{i}.bin").write_bytes(raw)
        xs.append(x)
        ys.append(y)
    raw, xt, yt = cifar_records(4, 1, seed=9)
    (d / "test_batch.bin").write_bytes(raw)
    ds = data.load(f"cifar10={tmp_path / 'c10'}", val_fraction=0)
    assert ds.input_shape == (3, 32, 32) and ds.classes[0] == "airplane" and ds.num_classes == 10
    np.testing.assert_allclose(denormalise(ds.x_train, ds), np.concatenate(xs), atol=1e-3)
    assert ds.y_train.tolist() == np.concatenate(ys).tolist() and ds.y_test.tolist() == yt.tolist()


def test_cifar100_binary_fine_labels_and_names_file(tmp_path):
    root = Path(os.environ["ACTLAB_DATA"])
    d = root / "cifar-100-binary"
    d.mkdir(parents=True)
    raw, x, fine = cifar_records(6, 2, seed=1)
    (d / "train.bin").write_bytes(raw)
    (d / "test.bin").write_bytes(cifar_records(2, 2, seed=2)[0])
    ds = data.load("cifar100", val_fraction=0)
    assert ds.num_classes == 100 and ds.classes[:3] == ["apple", "aquarium_fish", "baby"]
    assert ds.classes[-1] == "worm"
    assert ds.y_train.tolist() == fine.tolist()  # the second label byte, not the coarse first
    (d / "fine_label_names.txt").write_text("\n".join(f"name{i}" for i in range(100)) + "\n")
    assert data.load("cifar100").classes[5] == "name5"
    (d / "test.bin").write_bytes(raw[:-1])
    with pytest.raises(DataError, match=r"test\.bin: 18443 bytes is not a whole number of 3074-byte CIFAR records"):
        data.load("cifar100")


def test_standard_set_absent_says_where_and_how():
    with pytest.raises(DataError) as e:
        data.load("cifar10")
    msg = str(e.value)
    root = os.environ["ACTLAB_DATA"]
    assert msg.startswith("cifar10: files not found (looked in ")
    assert f"{root}/cifar-10-batches-bin" in msg and "ACTLAB_DATA" in msg and "download=True" in msg
    assert "\n" not in msg


def test_download_path_without_network(tmp_path, monkeypatch):
    """The download=True path, fed by a fake urlopen: fetch, MD5 check, extract, parse."""
    built = tmp_path / "build" / "cifar-10-batches-bin"
    built.mkdir(parents=True)
    for i in range(1, 6):
        (built / f"data_batch_{i}.bin").write_bytes(cifar_records(2, 1, seed=i)[0])
    (built / "test_batch.bin").write_bytes(cifar_records(2, 1, seed=0)[0])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(built, arcname="cifar-10-batches-bin")
    payload = buf.getvalue()
    import hashlib

    remote = standard._STANDARD["cifar10"].remotes[0]
    fake = standard._Remote(remote.filename, hashlib.md5(payload).hexdigest(), ("https://example.invalid/c10.tgz",))
    monkeypatch.setitem(standard._STANDARD, "cifar10", standard._STANDARD["cifar10"].__class__(
        **{**standard._STANDARD["cifar10"].__dict__, "remotes": (fake,)}))
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(DataError, match="files not found"):
        data.load("cifar10")  # download=False: never fetches
    assert urls == []
    ds = data.load("cifar10", download=True, val_fraction=0)
    assert urls == ["https://example.invalid/c10.tgz"] and len(ds.y_train) == 10
    root = Path(os.environ["ACTLAB_DATA"])
    assert (root / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert not (root / remote.filename).exists()  # the archive is removed after extraction


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"wrong bytes"))
    with pytest.raises(DataError, match=r"download of train-images-idx3-ubyte\.gz failed: .*MD5 .* != f68b3c2d"):
        data.load("mnist", download=True)
    leftovers = list(Path(os.environ["ACTLAB_DATA"]).rglob("*.part"))
    assert leftovers == []


# ---------------------------------------------------------------------------------------------
# the real CIFAR-10 JPEG folder, 200 images of it
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not CIFAR_JPEG.is_dir(), reason="shared CIFAR-10 JPEG folder not present")
def test_cifar10_jpeg_sample(tmp_path):
    """200 of the shared JPEGs (15 train + 5 test per class), linked into a temp folder."""
    for split, n in (("train", 15), ("test", 5)):
        for cls_dir in sorted((CIFAR_JPEG / split).iterdir()):
            dest = tmp_path / "c10" / split / cls_dir.name
            dest.mkdir(parents=True)
            for f in sorted(cls_dir.iterdir())[:n]:
                (dest / f.name).symlink_to(f)
    t0 = time.perf_counter()
    ds = data.load(str(tmp_path / "c10"), val_fraction=0.2)
    assert time.perf_counter() - t0 < 10
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10 and ds.classes[0] == "airplane"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (120, 30, 50)
    assert ds.meta["mode"] == "RGB"
    raw = denormalise(ds.x_test, ds)
    assert raw.min() >= -1e-3 and raw.max() <= 255 + 1e-3 and raw.std() > 20
