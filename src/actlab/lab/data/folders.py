"""Image folders: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` (or ``training/``,
``testing/``), decoded with Pillow — in a process pool for large folders — and cached."""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from .cache import _CACHE_VERSION, _digest, _read_cache, _slug, _write_cache
from .common import DataError, _Raw

log = logging.getLogger(__name__)

# Below this many files a process pool costs more to start than it saves.
_POOL_MIN_FILES = 2048

_IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
# Greyscale PIL modes load as one channel ("L"); every other mode loads as "RGB".
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


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
