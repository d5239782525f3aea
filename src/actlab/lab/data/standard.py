"""The standard sets from their usual files: CIFAR-10/100 (binary batches) and MNIST /
Fashion-MNIST (idx files) under ``$ACTLAB_DATA``; fetched, checksummed, only on request."""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import struct
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import DataError, _Raw

log = logging.getLogger(__name__)

STANDARD_NAMES = ("cifar10", "cifar100", "mnist", "fashion_mnist")


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
