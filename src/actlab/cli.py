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


def _registry_listing() -> dict[str, dict[str, Any]]:
    """Each entry as plain data: what ``actlab list`` prints."""
    out: dict[str, dict[str, Any]] = {}
    for e in registry.ENTRIES:
        _, resolved = registry.resolve(e.name)
        out[e.name] = {
            "title": e.title,
            "aliases": list(e.aliases),
            "formula": e.formula,
            "derivative": e.derivative,
            "paper": e.paper,
            "learned": list(e.learned),
            "hparams": [{"name": h.name, "default": resolved[h.name], "derived_default": h.default is None,
                         "type": h.kind.__name__, "valid": h.valid(), "doc": h.doc} for h in e.hparams],
        }
    return out


def _run_list(args: argparse.Namespace) -> int:
    import json

    listing = _registry_listing()
    if args.format == "json":
        print(json.dumps(listing, indent=2, ensure_ascii=False))
        return 0
    for name, e in listing.items():
        aliases = f"  (aliases: {', '.join(e['aliases'])})" if e["aliases"] else ""
        print(f"{name}{aliases} — {e['title']}")
        print(f"  f(x):   {e['formula']}")
        print(f"  f'(x):  {e['derivative']}")
        print(f"  paper:  {e['paper']}")
        if e["learned"]:
            print(f"  learned parameters: {', '.join(e['learned'])}")
        if not e["hparams"]:
            print("  hyper-parameters: none")
            print()
            continue
        print(f"  hyper-parameters (--param {name}.HPARAM=VALUE):")
        rows = []
        for h in e["hparams"]:
            d = h["default"]
            default = (f"{d:.6g}" if isinstance(d, float) else repr(d)) + ("*" if h["derived_default"] else "")
            rows.append((h["name"], f"default {default}", h["valid"], h["doc"]))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
        if any(h["derived_default"] for h in e["hparams"]):
            print("    * the default depends on the other hyper-parameters (see its description)")
        print()
    return 0


def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="the activations: names, aliases, hyper-parameters, formulas, papers",
                       description="The registry: for each activation its names, hyper-parameters with "
                                   "defaults and valid ranges, formula, derivative and paper.")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=_run_list)


def _run_props(args: argparse.Namespace) -> int:
    from . import properties

    hp = _hparam_pairs(args.param)
    rows = properties.table(hp, names=args.only, measure_cost=not args.no_cost,
                            cost_elements=args.cost_elements, cost_repeats=args.cost_repeats)
    print(properties.render(rows, args.format))
    return 0


def _add_props(sub: Any) -> None:
    p = sub.add_parser("props", help="the property table, every cell measured from actlab's implementations",
                       description="Range, mean output for x ~ N(0, 1), saturation, dead zone, monotonicity, "
                                   "learned parameters and relative cost of each activation, measured from "
                                   "the NumPy reference and the torch layers (see actlab.properties).")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="output format (default: text); json writes ±inf as \"inf\"/\"-inf\"")
    p.add_argument("--param", action="append", metavar="NAME.HPARAM=VALUE",
                   help="a hyper-parameter, e.g. leaky_relu.negative_slope=0 (repeatable)")
    p.add_argument("--only", action="append", metavar="NAME", help="only this activation (repeatable)")
    p.add_argument("--cost-elements", type=int, default=1_000_000, metavar="N",
                   help="float32 elements per timed forward+backward (default: 1000000)")
    p.add_argument("--cost-repeats", type=int, default=15, metavar="N",
                   help="timed runs per activation; the median counts (default: 15)")
    p.add_argument("--no-cost", action="store_true", help="skip the timing (relative_cost is null)")
    p.set_defaults(func=_run_props)


def _run_plot(args: argparse.Namespace) -> int:
    from . import plotting

    paths = plotting.write_all(args.out, args.format, _hparam_pairs(args.param), only=args.only, dpi=args.dpi)
    for path in paths:
        print(path)
    return 0


def _add_plot(sub: Any) -> None:
    p = sub.add_parser("plot", help="the chapter's figures: f beside f', the rectifier family, an overview",
                       description="Write one figure per activation (f beside f', dead zones and saturation "
                                   "shaded), the rectifier family (RReLU's training slopes as a band) and an "
                                   "overview of all seven; print the paths written.")
    p.add_argument("--out", default="figures", metavar="DIR", help="output folder, created if need be "
                                                                     "(default: figures)")
    p.add_argument("--format", choices=("png", "svg", "pdf"), default="png", help="file format (default: png)")
    p.add_argument("--param", action="append", metavar="NAME.HPARAM=VALUE",
                   help="a hyper-parameter, e.g. leaky_relu.negative_slope=0.1 (repeatable)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="only this activation's figure, or rectifier_family, or overview (repeatable)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of PNG files (default: 100)")
    p.set_defaults(func=_run_plot)


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
    except BrokenPipeError:  # `actlab list | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("actlab: interrupted; completed results are kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
