"""The ``actlab`` command: one subcommand per job.

    actlab list       the registry: names, aliases, hyper-parameters with defaults and ranges
    actlab props      the property table, measured from the implementations
    actlab plot       the chapter's figures
    actlab compare    the lab: train one model with each activation over seeds, store, report
    actlab report     rebuild a report from a results database
    actlab bench      actlab's layers against torch.nn's, in time and memory

Each subcommand is declared by a function ``_add_<name>(subparsers)`` below, in the order of
``--help``; it sets ``func`` to the function that runs it. Errors a user can cause (bad names,
bad values, missing files) print one line, ``actlab: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

from . import __version__, registry


def _hparam_pairs(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["leaky_relu.negative_slope=0.1", ...]`` → ``{"leaky_relu": {"negative_slope": "0.1"}}``.

    Values stay strings; the registry converts and checks them.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        act, dot, hp = key.partition(".")
        if not (eq and dot and act and hp):
            raise ValueError(f"--param {item!r}: expected NAME.HPARAM=VALUE, e.g. leaky_relu.negative_slope=0.1")
        out.setdefault(registry.canonical(act), {})[hp] = value
    for act, hp in out.items():
        registry.resolve(act, hp)  # fail early, one line, with the valid choices
    return out


# --- list / props / plot (registry, properties.py, plotting.py) -----------------------------


# --- compare / report (lab/) ------------------------------------------------------------------


# --- bench (fast/, benchmarks/) -------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actlab",
        description="The seven activation functions of the chapter, exact and fast, and a lab that "
                    "compares them on your data.")
    parser.add_argument("--version", action="version", version=f"actlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    adders: list[Callable[[Any], None]] = [f for n, f in globals().items() if n.startswith("_add_")]
    for add in adders:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"actlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actlab: interrupted; completed results are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
