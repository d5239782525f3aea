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

The package, one module per concern: :mod:`.pipeline` (:func:`load`, :class:`Dataset`),
:mod:`.builtin` (digits, mnist1d), :mod:`.folders` (image folders), :mod:`.npz`,
:mod:`.standard` (CIFAR, MNIST files), :mod:`.cache` (the decode cache), :mod:`.common`
(:class:`DataError`, the raw arrays a source yields). This file only re-exports.
"""

from __future__ import annotations

from .common import DataError
from .pipeline import DEFAULT_SPEC, SPEC_HELP, Dataset, builtin_names, load

__all__ = ["DataError", "Dataset", "load", "builtin_names", "DEFAULT_SPEC", "SPEC_HELP"]
