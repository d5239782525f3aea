"""The ``actlab`` command: one subcommand per job.

    actlab list       the registry: names, aliases, hyper-parameters with defaults and ranges
    actlab props      the property table, measured from the implementations
    actlab plot       the chapter's figures
    actlab compare    the lab: train one model with each activation over seeds, store, report
    actlab report     rebuild a report from a results database; several: a summary across data sets
    actlab bench      actlab's layers against torch.nn's, in time and memory

Each subcommand is declared by a function ``_add_<name>(subparsers)`` below, in the order of
``--help``; it sets ``func`` to the function that runs it. Errors a user can cause (bad names,
bad values, missing files) print one line, ``actlab: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from . import registry
from .version import __version__


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
    for e in registry.entries():
        _, resolved = registry.resolve(e.name)
        out[e.name] = {
            "title": e.title,
            "group": e.group,
            "family": e.family,
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
        print(f"{name}{aliases} — {e['title']}  [{e['group']}, {e['family']}]")
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
                       description="The registry: for each activation its names, group (chapter: the "
                                   "chapter's seven, what 'all' means elsewhere; modern: GELU, SiLU, SELU, "
                                   "Mish), family, hyper-parameters with defaults and valid ranges, formula, "
                                   "derivative and paper.")
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
    p.add_argument("--only", action="append", metavar="NAME",
                   help="only this activation, or a set: all (the chapter's seven, the default), modern, "
                        "every (repeatable)")
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
                   help="only this activation's figure, or a set of them (all: the chapter's seven; "
                        "modern; every), or rectifier_family, or overview (repeatable)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of PNG files (default: 100)")
    p.set_defaults(func=_run_plot)


# --- compare / report (lab/) ------------------------------------------------------------------


def _setting_options(p: argparse.ArgumentParser, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One option per field of :class:`actlab.lab.plan.Setting` (``--val-fraction`` for
    ``val_fraction``), with the field's default, help and parser; ``overrides`` per field name."""
    from .lab import plan

    groups: dict[str, Any] = {}
    for name, default, meta in plan.options():
        o = {**meta, "default": default, **overrides.get(name, {})}
        group = o["group"]
        if group is not None and group not in groups:
            groups[group] = p.add_argument_group(group)
        target = p if group is None else groups[group]
        flag = "--" + name.replace("_", "-")
        if o["parse"] is bool:
            target.add_argument(flag, action="store_true", default=o["default"], help=o["help"])
        else:  # the lr grid is parsed when the comparison is built (plan.parse_lrs names a bad rate)
            parse = str if o["parse"] == "lrs" else o["parse"]
            default = str(o["default"]) if o["parse"] == "lrs" else o["default"]
            target.add_argument(flag, type=parse, default=default, metavar=o["metavar"], help=o["help"])
    return groups


def _add_compare(sub: Any) -> None:
    from .lab import data, executor, models, plan

    defaults = plan.Comparison(variants=())  # seeds: the comparison's own field
    p = sub.add_parser(
        "compare", help="train one model with each activation over seeds; store every run; report",
        description="Train the same model on the same data with each activation variant and several seeds "
                    "(a seed fixes the data order and the shared initial weights, so runs are paired), store "
                    "every run in DIR/results.sqlite, and write DIR/report.md and DIR/report.html. Rerunning "
                    "the same command resumes: finished runs are skipped.")
    p.add_argument("--acts", default="all", metavar="LIST",
                   help="comma-separated NAME[:HP=V[:HP=V]], 'all' for the chapter's seven (default), 'modern' "
                        "(GELU, SiLU, SELU, Mish) or 'every', e.g. "
                        "relu,leaky_relu:negative_slope=0.1,rrelu:form=divisor,prelu:channelwise; 'model' keeps "
                        "an own model's activations (the baseline: --acts model,relu,prelu)")
    p.add_argument("--seeds", type=int, default=defaults.seeds, metavar="N", help="seeds 0..N-1 (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="DIR", help="results directory (default: runs/<data name>)")
    # every setting of a run (data, model, optimisation) is an option, built from plan.Setting's fields
    groups = _setting_options(p, {
        "data": {"group": None, "default": data.DEFAULT_SPEC, "help": data.SPEC_HELP},
        "model": {"group": None, "default": "auto",
                  "help": f"{' | '.join(models.names())} (default: the one that fits the data: cnn for images); "
                          f"or {models.OWN_SPEC_HELP}; every activation module of an own model (nn.ReLU, nn.GELU, "
                          f"...) is replaced by each variant"},
    })
    groups["data and model"].add_argument(
        "--download", action="store_true", help="fetch a standard set (cifar10, mnist, ...) if absent")
    g = p.add_argument_group("running and reporting")
    g.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
    g.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="runs at once, in worker processes (default: one per core ÷ --threads, or one per GPU; "
                        "1: in this process); same results whatever N")
    g.add_argument("--threads", type=int, default=executor.DEFAULT_THREADS, metavar="T",
                   help="intra-op threads of every run (default: %(default)s; jobs × threads ≤ cores). Results "
                        "depend on it in the last bits, so it is fixed, not split by --jobs")
    g.add_argument("--executor", choices=executor.EXECUTORS, default="local",
                   help="local (this machine; default) | ray (every run a Ray task; pip install 'actlab[ray]')")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --executor ray: auto (the cluster this machine belongs to) | HOST:PORT | ray://... "
                        "(default: a local Ray started for this call)")
    g.add_argument("--target-error", type=float, default=None, metavar="E",
                   help="training error for the time-to-target table, e.g. 0.05 (default: chosen from the data)")
    g.add_argument("--quiet", action="store_true", help="no progress output; print only the report's path")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from .lab import compare, plan

    setting = {name: getattr(args, name) for name, _, _ in plan.options()}
    setting["lr"] = plan.parse_lrs(args.lr)
    comparison = plan.Comparison(variants=tuple(plan.parse_variants(args.acts)), seeds=args.seeds, **setting)
    out = args.out if args.out is not None else compare.default_out(args.data)
    result = compare.compare(comparison, out, device=args.device, quiet=args.quiet, download=args.download,
                             target_error=args.target_error, argv=_explicit_command(args), executor=args.executor,
                             jobs=args.jobs, threads=args.threads, ray_address=args.ray_address)
    if not args.quiet:
        print(f"{result.ran} runs in {result.seconds:.0f} s ({result.done} done, {result.diverged} diverged, "
              f"{result.failed} failed; {result.skipped} already in {result.directory})", file=sys.stderr)
    print(f"report: {result.report['html']}  (also {result.report['markdown']})")
    if result.failed:
        print(f"actlab: error: {result.failed} runs failed (see the report's Runs table); rerun the same command "
              f"to retry them", file=sys.stderr)
        return 1
    return 0


def _explicit_command(args: argparse.Namespace) -> list[str]:
    """The command with every option spelled out, so that it reproduces the runs even if a
    default changes (the report prints it)."""
    words = ["actlab", "compare"]
    for name, value in vars(args).items():
        if name in ("func", "command") or value is None or value is False:
            continue
        words += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return words


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="rebuild a report from a results database; several: a summary across data sets",
                       description="With one DIR: write DIR/report.md, DIR/report.html and DIR/export/ from "
                                   "DIR/results.sqlite (the report reads only the database). With several DIRs "
                                   "and --out OUT: combine their comparisons of the same variants on different "
                                   "data into OUT/summary.md and OUT/summary.html: the rank of each variant per "
                                   "data set, average ranks, the Friedman test, the Nemenyi critical-difference "
                                   "diagram and a verdict (is there a consistent winner?).")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="directories written by actlab compare")
    p.add_argument("--out", default=None, metavar="OUT",
                   help="where the summary across the DIRs goes (required with several DIRs; with one DIR, a "
                        "summary of its comparisons is written there instead of its report)")
    p.add_argument("--target-error", type=float, default=None, metavar="E",
                   help="training error for the time-to-target table (default: as recorded by compare)")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from .lab import report, summary

    if args.out is None:
        if len(args.dirs) > 1:
            raise ValueError(f"{len(args.dirs)} directories are combined into a summary across data sets; "
                             f"give --out DIR for it")
        paths = report.write(args.dirs[0], target_error=args.target_error)
        print(f"report: {paths['html']}  (also {paths['markdown']})")
        return 0
    if args.target_error is not None:
        raise ValueError("--target-error applies to one directory's report, not to a summary (--out)")
    paths = summary.write(args.dirs, args.out)
    print(f"summary: {paths['html']}  (also {paths['markdown']})")
    return 0


# --- verify (verify/) ------------------------------------------------------------------------


def _add_verify(sub: Any) -> None:
    p = sub.add_parser(
        "verify", help="every claim of the chapter as a small experiment, with a verdict",
        description="Run one small experiment per claim of the chapter (saturation, zero-centring, dead zone, "
                    "ReLU's speed, PReLU's slopes and order, overfitting, RReLU, ELU, no winner) on the lab, store "
                    "every run in DIR/results.sqlite (a rerun resumes) and write DIR/verify.md, DIR/verify.html and "
                    "DIR/verify.json: per claim the measured quantity, its 95% interval, the threshold and the "
                    "verdict (holds / does not hold / inconclusive), with a figure.")
    p.add_argument("--out", required=True, metavar="DIR", help="results directory")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small data and few seeds, sized for about 10 minutes on 2 idle CPU cores (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="more seeds, larger data and widths: for a GPU or a cluster")
    p.set_defaults(mode="quick")
    p.add_argument("--data", action="append", default=[], metavar="SPEC",
                   help="another data set for the claims that span data sets (4, 10), repeatable; digits, mnist1d "
                        "and CIFAR-10 ($ACTLAB_CIFAR10_DIR or shared/data/cifar10-jpeg) are always used")
    p.add_argument("--only", action="append", metavar="CLAIM",
                   help="only these claims: numbers 1-10 or names (saturation, dead-zone, ...), comma-separated "
                        "or repeated")
    p.add_argument("--no-cifar", action="store_true", help="leave the CIFAR-10 folder out even where it is found")
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | cuda:N | auto")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default: 1; the models are small, and on a busy machine one thread per "
                        "process is much faster than two)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="runs at once, in worker processes, as actlab compare's (default: one per core ÷ "
                        "--threads, or one per GPU; 1: in this process); the same numbers whatever N")
    p.add_argument("--quiet", action="store_true", help="no progress lines; print only the report's path")
    p.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from .verify import claims
    from .verify.run import verify

    from .lab import executor

    only = claims.parse_only(args.only)
    jobs = args.jobs if args.jobs is not None else executor.default_jobs(args.device if args.device != "auto"
                                                                         else "cpu", args.threads)
    if jobs < 1 or (not args.device.startswith("cuda") and jobs * args.threads > executor.cores()):
        raise ValueError(f"--jobs {jobs} × --threads {args.threads}: valid: jobs >= 1 and jobs × threads <= "
                         f"{executor.cores()} cores")
    result = verify(args.out, mode=args.mode, only=only, extra_data=args.data, device=args.device,
                    threads=args.threads, jobs=jobs, quiet=args.quiet, include_cifar=not args.no_cifar,
                    argv=["actlab", "verify"] + (sys.argv[2:] if len(sys.argv) > 2 else []))
    if not args.quiet:
        for claim, verdict in result.verdicts.items():
            print(f"claim {claim:>2} ({claims.CLAIMS[claim - 1].name}): {verdict}", file=sys.stderr)
        print(f"{result.ran} runs in {result.seconds:.0f} s ({result.planned - result.ran} already in "
              f"{result.directory})", file=sys.stderr)
    print(f"report: {result.report['html']}  (also {result.report['markdown']}, {result.report['json']})")
    return 0


# --- bench (fast/, benchmarks/) -------------------------------------------------------------


def _read_report(path: str, option: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{option}: cannot read {path}: {err}; valid: JSON files written by actlab bench --json") from None


def _run_bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.bounds:
        from .lab import stepbench

        rows = stepbench.bounds([_read_report(path, "--bounds") for path in args.bounds])
        print(stepbench.bounds_summary(rows))
        return 0
    if args.agree:
        if not args.tolerance >= 0:
            raise ValueError(f"--tolerance {args.tolerance}: must be a fraction >= 0, e.g. 0.2 for 20%")
        reports = [_read_report(path, "--agree") for path in args.agree]
        rows = bench.agreement(*reports, tolerance=args.tolerance)
        print(bench.agreement_summary(rows, args.tolerance, [r.get("load", {}).get("busy", False) for r in reports]))
        return 0 if all(r["agree"] for r in rows) else 1
    if args.repeats < 1 or args.warmup < 0:
        bad = f"--repeats {args.repeats}" if args.repeats < 1 else f"--warmup {args.warmup}"
        raise ValueError(f"{bad}: valid: --repeats >= 1 (timed repeats, or paired rounds with --model) and "
                         f"--warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads}: valid: an integer >= 1 (or leave it out for torch's setting)")
    if args.batch < 1:
        raise ValueError(f"--batch {args.batch}: valid: an integer >= 1")
    acts = [a for a in args.acts.split(",") if a.strip()] if args.acts else None
    if args.model:
        from .lab import stepbench

        if args.device != "cpu":
            raise ValueError(f"--model: the whole-step benchmark runs on the CPU; got --device {args.device}")
        setting = stepbench.StepSetting(model=args.model, width=args.width, batch=args.batch)
        report = stepbench.run(acts, setting, args.threads if args.threads is not None else 2, args.repeats,
                               args.warmup, under_load=args.under_load,
                               progress=None if args.quiet else stepbench.print_row, builds=args.builds)
        print(stepbench.summary(report))
    else:
        report = bench.run(acts, bench.parse_sizes(args.sizes), bench.parse_dtypes(args.dtypes), args.device,
                           args.threads, args.repeats, args.warmup, lean=args.lean,
                           retain_memory=args.retain_freed_memory, under_load=args.under_load,
                           progress=None if args.quiet else bench.print_row,
                           passes=bench.PASSES if args.passes is None else args.passes)
        print(bench.summary(report))
    if args.json:
        bench.write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="actlab's layers against torch.nn's: time, copy bandwidth, memory kept",
                       description="Forward and forward+backward time of each activation's actlab layer and "
                                   "torch.nn layer in the same run, the ratio, the fraction of copy bandwidth, "
                                   "and the bytes kept for backward (see actlab.bench). Ratios are torch.nn time / "
                                   "actlab time, paired round by round. On the CPU actlab's outputs come from its "
                                   "warm pool (ACTLAB_CPU_POOL_MB, default 256; 0 turns it off).")
    p.add_argument("--acts", metavar="LIST", help="comma-separated names or case labels, e.g. prelu,rrelu-train "
                                                  "(default: all; prelu means shared and channel-wise)")
    p.add_argument("--sizes", default="1M,16M", metavar="LIST",
                   help="elements per input, binary units: 64K, 1M = 1048576, 16M, 32M (default: 1M,16M)")
    p.add_argument("--dtypes", default="float32", metavar="LIST", help="e.g. float32,bfloat16 (default: float32)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch (and numba) threads "
                                                                          "(default: torch's setting)")
    p.add_argument("--repeats", type=int, default=20, metavar="N",
                   help="timed repeats, in rounds of 3 calls per function taking turns (on the CPU more while a "
                        "block lasts under 5 ms); a ratio is the median of the rounds' ratios (with --model: "
                        "paired rounds of one step each) (default: 20)")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed repeats first (default: 3)")
    p.add_argument("--passes", type=int, default=None, metavar="N",
                   help="layer benchmark: sweeps over all rows that share each row's rounds, so that each ratio "
                        "samples the host's state across the whole run (default: actlab.bench.PASSES, 4)")
    p.add_argument("--lean", action="store_true", help="also the lean variants (1 bit per element kept)")
    p.add_argument("--retain-freed-memory", action="store_true",
                   help="glibc keeps freed large blocks mapped, torch's included (no page faults for fresh "
                        "outputs on either side: the kernels compared alone; see "
                        "actlab.fast.retain_freed_memory)")
    p.add_argument("--model", choices=("he14", "cnn", "mlp"), default=None,
                   help="time a whole SGD training step of this lab model instead of single layers: actlab's "
                        "layers vs torch.nn's vs no activation (the ceiling), and the bytes kept for backward; "
                        "mlp (8 hidden layers of 256 x width on flattened 3x32x32 inputs) is the small-tensor "
                        "case: 8K elements per activation at the defaults")
    p.add_argument("--width", type=float, default=0.5, metavar="W", help="--model's width multiplier (default: 0.5)")
    p.add_argument("--batch", type=int, default=64, metavar="N", help="--model's batch size (default: 64)")
    p.add_argument("--builds", type=int, default=4, metavar="N",
                   help="--model: builds of each model, taking turns round by round; identical builds step "
                        "2-4%% apart, so the interval resamples builds (default: 4)")
    p.add_argument("--under-load", action="store_true",
                   help="run one CPU-bound process beside the benchmark for its duration, as another tenant "
                        "would (the goal: actlab never more than 1.1x torch.nn's time)")
    p.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    p.add_argument("--agree", nargs=2, metavar=("A.json", "B.json"),
                   help="measure nothing: compare every ratio of two earlier runs' JSON (each ratio's spread, "
                        "larger / smaller - 1); exit status 1 if any spread exceeds --tolerance")
    p.add_argument("--bounds", nargs="+", metavar="STEP.json",
                   help="measure nothing: pool whole-step runs (--model he14 JSONs) and, for each named goal, "
                        "count the runs whose ratio, floors and ceiling fall below it, with a one-sided sign "
                        "test: a bound below the goal in every one of n runs has p = 2^-n")
    p.add_argument("--tolerance", type=float, default=0.2, metavar="F",
                   help="--agree's largest spread that counts as agreeing (default: 0.2, i.e. 20%%)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_run_bench)


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
