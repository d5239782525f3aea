"""The decode cache: ``.npz`` files under ``$ACTLAB_CACHE`` (default ``~/.cache/actlab``), keyed by
content digests, written atomically; a file that cannot be read is ignored and rewritten."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Bump when the layout of a cache file changes: old files then simply stop matching.
_CACHE_VERSION = "actlab-data-1"


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("ACTLAB_CACHE") or Path.home() / ".cache" / "actlab").expanduser()


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
