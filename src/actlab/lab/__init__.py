"""The lab: compare activations on real data (data → models → train → store → report).

``actlab.lab.compare(model=..., data=..., acts=..., ...)`` runs a comparison from Python (see
:func:`actlab.lab.compare.run`); the submodules are imported on first use.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("analysis", "compare", "data", "executor", "figures", "models", "monitors", "plan", "report",
                "stats", "store", "train"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
