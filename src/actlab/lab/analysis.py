"""The results database → the numbers of the report, as plain JSON-ready data.

:func:`analyse` reads only the store (:class:`actlab.lab.store.Store`) and returns a dict;
:mod:`actlab.lab.report` renders it (Markdown, HTML, figures, CSV) and writes it as JSON, so every
number a report shows is in that JSON and can be recomputed from the database.

Runs are grouped by setting (everything but the activation and the seed: data, model,
optimisation, epochs); each group is one comparison with its own tables. Within a group:

* **Table 8.2** — per variant, over the runs that finished (status ``done``): the final test error
  (after the last epoch), the test error at the best validation epoch (early stopping chosen on
  the validation split: the honest model selection) and the best test error (the lowest over the
  epochs: optimistic, it peeks at the test set; shown because the chapter's tables report single
  best models) as mean, std and 95% t interval. Diverged and failed runs are counted, not
  averaged.
* **paired differences vs the baseline** (ReLU where it ran, else the first variant): for each
  variant, the seeds where both finished; mean difference (variant − baseline) with its 95%
  interval, the two-sided paired t-test, and Holm's correction across the variants. The verdict
  is read at α = 0.05 from the Holm-adjusted p.
* **Table 8.1** — PReLU variants: the learned slope per layer after the last epoch (the mean over
  channels for channel-wise PReLU), mean and std over seeds.
* **speed** — epochs and training seconds until the training error, averaged over the last
  epoch's worth of batches (a sliding window over the logged windows), first falls to the target
  error; the ratio to tanh = tanh's mean / the variant's mean (> 1: faster than tanh).
* **layers** — per layer, at the first and last epoch: dead and saturated fractions, gradient
  norms (see :mod:`actlab.lab.monitors` for the definitions).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict
from typing import Any

from .. import registry
from . import stats
from ..reference import SATURATED_UNIT_FRACTION, SATURATION_RATIO
from .store import Store

__all__ = ["analyse", "auto_target", "ALPHA", "CONFIDENCE", "DEFINITIONS"]

ALPHA = 0.05
CONFIDENCE = 0.95
#: the three test errors of Table 8.2: after the last epoch, at the best validation epoch, lowest
WHICH = ("final", "selected", "best")
DEFINITIONS = {
    "final test error": "test error after the last epoch",
    "test error at best val": "test error after the epoch with the lowest validation error (the earliest on a "
                              "tie): early stopping, chosen without looking at the test set",
    "best test error": "lowest test error over the epochs (optimistic: chosen on the test set)",
    "paired test": f"{stats.PAIRED_TEST}; pairs share a seed (same data order and initial weights); "
                   f"Holm's correction across the variants compared with the baseline; alpha = {ALPHA}",
    "confidence interval": f"{CONFIDENCE:.0%} two-sided, t distribution with n - 1 degrees of freedom",
    "training error": "running error over the epoch's training batches, in training mode",
    "time to target": "first point where the training error, averaged over the last epoch's worth of batches, "
                      "is at or below the target; seconds count training steps only (no evaluation, no monitors)",
    "unit": "a channel of a feature map or a feature of a fully-connected layer",
    "dead": "rectifiers only: a unit whose input was never > 0 over the epoch's training batches",
    "saturated": f"a unit with |f'(x)| < {SATURATION_RATIO:g} x max|f'| for at least {SATURATED_UNIT_FRACTION:.0%} "
                 "of its inputs in the epoch (f' from the activation's own formula)",
    "gradient norm": "L2 norm of the loss gradient w.r.t. the weight of the layer the activation follows, "
                     "mean over the epoch's steps",
    "PReLU slope": "learned a after the epoch; channel-wise: the mean over channels",
}


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _summary(values: list[float]) -> dict[str, Any]:
    s = stats.summarize(values, CONFIDENCE)
    return {"n": s.n, "mean": s.mean, "std": s.std, "ci_low": s.ci_low, "ci_high": s.ci_high}


def _variant_order(runs: list[dict[str, Any]]) -> list[str]:
    order = {name: i for i, name in enumerate(registry.names())}
    firsts: dict[str, tuple[int, str]] = {}
    for r in runs:
        firsts.setdefault(r["variant"], (order.get(r["act"], len(order)), r["variant"]))
    return sorted(firsts, key=lambda v: firsts[v])


def _time_to_target(steps: list[dict[str, Any]], target: float) -> tuple[float, float] | None:
    """(epochs, seconds) at which the training error, averaged over the last epoch's worth of
    logged windows, first reaches ``target``; None if it never does (or the run diverged)."""
    per_epoch = max(1, sum(1 for s in steps if s["epoch"] <= 1 + 1e-9))
    errors: list[float] = []
    for s in steps:
        if s["error"] is None:
            return None
        errors.append(s["error"])
        recent = errors[-per_epoch:]
        if sum(recent) / len(recent) <= target:
            return float(s["epoch"]), _nan(s["train_seconds"])
    return None


def auto_target(final_train_errors: dict[str, list[float]], num_classes: int | None) -> float:
    """The default target training error for the speed table, chosen so that it discriminates.

    The smallest of 1, 2, 5, 10, 20, 25, 50% that is at or above the mean final training error
    of every variant that learned (mean final training error below half the chance error
    1 − 1/classes); 25% (Krizhevsky et al.'s CIFAR-10 target) when none learned.
    """
    chance = 1 - 1 / num_classes if num_classes else 0.9
    means = [sum(v) / len(v) for v in final_train_errors.values() if v]
    learned = [m for m in means if m < chance / 2]
    if not learned:
        return 0.25
    worst = max(learned)
    return next((t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5) if worst <= t), 0.5)


# --- the analysis ---------------------------------------------------------------------------


def analyse(store: Store, *, target_error: float | None = None, baseline: str = "relu") -> dict[str, Any]:
    """Everything the report shows, from ``store`` alone (see the module docstring).

    ``target_error``: for the speed table; default: the latest ``actlab compare``'s
    ``--target-error`` recorded in the store, else :func:`auto_target`.
    """
    invocations = store.invocations()
    if target_error is None:
        target_error = next((i["settings"].get("target_error") for i in reversed(invocations)
                             if i["settings"].get("target_error") is not None), None)
    runs = store.runs()
    epochs, layers, steps = defaultdict(list), defaultdict(list), defaultdict(list)
    for row in store.epochs():
        epochs[row["run_key"]].append(row)
    for row in store.layers():
        layers[row["run_key"]].append(row)
    for row in store.steps():
        steps[row["run_key"]].append(row)
    by_group: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for r in runs:
        by_group.setdefault(r["grp"], []).append(r)
    groups = [_group(g, rs, epochs, layers, steps, target_error, baseline) for g, rs in by_group.items()]
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "database": str(store.path),
        "groups": groups,
        "invocations": [{k: i[k] for k in ("id", "started", "argv", "settings")} for i in invocations],
        "environment": _environment(runs, invocations),
        "definitions": DEFINITIONS,
        "alpha": ALPHA,
        "confidence": CONFIDENCE,
    }


def _environment(runs: list[dict[str, Any]], invocations: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every distinct value of every environment field over the runs and invocations."""
    seen: OrderedDict[str, list[Any]] = OrderedDict()
    for env in [i["environment"] for i in invocations] + [r["environment"] for r in runs]:
        for k, v in env.items():
            if k == "data":
                continue
            vals = seen.setdefault(k, [])
            if v not in vals:
                vals.append(v)
    return dict(seen)


def _run_row(r: dict[str, Any], eps: list[dict[str, Any]]) -> dict[str, Any]:
    done = r["status"] == "done" and eps
    tests = [e["test_error"] for e in eps if e["test_error"] is not None]
    best = min(range(len(eps)), key=lambda i: eps[i]["test_error"]) if done and tests else None
    vals = [i for i, e in enumerate(eps) if e["val_error"] is not None and not math.isnan(e["val_error"])]
    chosen = min(vals, key=lambda i: eps[i]["val_error"]) if done and vals else None
    return {
        "key": r["key"], "variant": r["variant"], "act": r["act"], "seed": r["seed"], "status": r["status"],
        "error": r["error"], "epochs_done": r["epochs_done"],
        "final_test_error": eps[-1]["test_error"] if done else None,
        "best_test_error": eps[best]["test_error"] if best is not None else None,
        "best_epoch": eps[best]["epoch"] if best is not None else None,
        "selected_test_error": eps[chosen]["test_error"] if chosen is not None else None,
        "selected_epoch": eps[chosen]["epoch"] if chosen is not None else None,
        "final_train_error": eps[-1]["train_error"] if done else None,
        "final_train_loss": eps[-1]["train_loss"] if done else None,
        "train_seconds": r["train_seconds"], "wall_seconds": r["wall_seconds"], "device": r["device"],
        "prelu_init": (r["spec"].get("hparams") or {}).get("init"),  # only PReLU's entry has an init
    }


def _group(group: str, runs: list[dict[str, Any]], epochs: dict[str, list[dict[str, Any]]],
           layers: dict[str, list[dict[str, Any]]], steps: dict[str, list[dict[str, Any]]],
           target_error: float | None, baseline_act: str) -> dict[str, Any]:
    spec = runs[0]["spec"]
    setting = {k: v for k, v in spec.items() if k not in ("act", "hparams", "variant", "seed")}
    data = runs[0]["environment"].get("data", {})
    variants = _variant_order(runs)
    rows = [_run_row(r, epochs[r["key"]]) for r in runs]
    by_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for row in sorted(rows, key=lambda x: x["seed"]):
        by_variant[row["variant"]].append(row)
    act_of = {r["variant"]: r["act"] for r in runs}
    baseline = next((v for v in variants if v == baseline_act), None) or next(
        (v for v in variants if act_of[v] == baseline_act), variants[0])

    # --- Table 8.2 and the paired tests -------------------------------------------------------
    table = []
    for v in variants:
        rs = by_variant[v]
        done = [x for x in rs if x["status"] == "done"]
        table.append({
            "variant": v, "act": act_of[v], "runs": len(rs), "done": len(done),
            "diverged": sum(x["status"] == "diverged" for x in rs), "failed": sum(x["status"] == "failed" for x in rs),
            "seeds": [x["seed"] for x in done],
            "final": _summary([x["final_test_error"] for x in done]),
            "selected": _summary([x["selected_test_error"] for x in done if x["selected_test_error"] is not None]),
            "best": _summary([x["best_test_error"] for x in done]),
        })
    paired = []
    base = {x["seed"]: x for x in by_variant[baseline] if x["status"] == "done"}
    for v in variants:
        if v == baseline:
            continue
        pairs = [(x, base[x["seed"]]) for x in by_variant[v] if x["status"] == "done" and x["seed"] in base]
        entry: dict[str, Any] = {"variant": v, "baseline": baseline, "seeds": [a["seed"] for a, _ in pairs]}
        for which in WHICH:
            ok = [(a, b) for a, b in pairs if a[f"{which}_test_error"] is not None
                  and b[f"{which}_test_error"] is not None]
            t = stats.paired_test([a[f"{which}_test_error"] for a, _ in ok],
                                  [b[f"{which}_test_error"] for _, b in ok], CONFIDENCE)
            entry[which] = {"n": t.n, "mean_diff": t.mean_diff, "std_diff": t.std_diff, "ci_low": t.ci_low,
                            "ci_high": t.ci_high, "t": t.t, "p": t.p}
        paired.append(entry)
    for which in WHICH:
        for entry, p in zip(paired, stats.holm([e[which]["p"] for e in paired])):
            entry[which]["p_holm"] = p
            entry[which]["verdict"] = _verdict(entry, which)
    summary = _overall(paired, baseline, by_variant)

    # --- Table 8.1: learned PReLU slopes --------------------------------------------------------
    slopes = _slopes(variants, act_of, by_variant, layers)

    # --- speed: time to the target training error ----------------------------------------------
    finals = {v: [x["final_train_error"] for x in by_variant[v] if x["status"] == "done"] for v in variants}
    target = target_error if target_error is not None else auto_target(finals, data.get("classes"))
    speed = _speed(variants, act_of, by_variant, steps, target, target_error is None)

    return {
        "group": group, "setting": setting, "data": data, "variants": variants, "baseline": baseline,
        "seeds": sorted({r["seed"] for r in runs}), "runs": rows, "table": table, "paired": paired,
        "summary": summary, "slopes": slopes, "speed": speed,
        "curves": _curves(variants, by_variant, epochs), "layers": _layers(variants, by_variant, layers),
    }


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _verdict(entry: dict[str, Any], which: str) -> str:
    t, v, b = entry[which], entry["variant"], entry["baseline"]
    if t["n"] < 2:
        return f"not tested: {t['n']} paired seed(s); a paired test needs at least 2"
    if math.isnan(t["p"]):
        return f"not testable: the difference is the same ({_pp(t['mean_diff'])}) on every seed"
    where = f"(mean difference {_pp(t['mean_diff'])}, 95% CI {_pp(t['ci_low'])} to {_pp(t['ci_high'])}, " \
            f"p = {t['p']:.3g}, Holm p = {t['p_holm']:.3g}, n = {t['n']})"
    if t["p_holm"] < ALPHA:
        return f"{v} has {'lower' if t['mean_diff'] < 0 else 'higher'} error than {b} {where}"
    return f"no significant difference from {b} {where}"


def _overall(paired: list[dict[str, Any]], baseline: str, by_variant: dict[str, list[dict[str, Any]]]) -> str:
    """The verdict in words, on the final test error."""
    tested = [e for e in paired if e["final"]["n"] >= 2 and not math.isnan(e["final"]["p"])]
    better = [e["variant"] for e in tested if e["final"]["p_holm"] < ALPHA and e["final"]["mean_diff"] < 0]
    worse = [e["variant"] for e in tested if e["final"]["p_holm"] < ALPHA and e["final"]["mean_diff"] > 0]
    ns = sorted({e["final"]["n"] for e in tested})
    parts = []
    if not tested:
        parts.append(f"No variant could be tested against {baseline} (a paired test needs at least 2 seeds "
                     f"where both runs finished).")
    elif not better and not worse:
        parts.append(f"No variant differs significantly from {baseline} in final test error "
                     f"(paired t-test, Holm-corrected, alpha = {ALPHA}, n = {'/'.join(map(str, ns))} seeds). "
                     f"\"No significant difference\" is an answer, though with few seeds only large differences "
                     f"can be detected.")
    else:
        if better:
            parts.append(f"Significantly lower final test error than {baseline}: {', '.join(better)}.")
        if worse:
            parts.append(f"Significantly higher final test error than {baseline}: {', '.join(worse)}.")
        rest = [e["variant"] for e in tested if e["variant"] not in better + worse]
        if rest:
            parts.append(f"No significant difference: {', '.join(rest)}.")
        parts.append(f"(paired t-test over seeds, Holm-corrected, alpha = {ALPHA}, n = {'/'.join(map(str, ns))}.)")
    unstable = {v: sum(x["status"] != "done" for x in rs) for v, rs in by_variant.items()}
    for v, k in unstable.items():
        if k:
            states = sorted({x["status"] for x in by_variant[v] if x["status"] != "done"})
            parts.append(f"{v}: {k} of {len(by_variant[v])} runs {' or '.join(states)} (left out of the statistics).")
    return " ".join(parts)


def _last_epoch_rows(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    last = max((r["epoch"] for r in rows), default=None)
    return {r["layer_index"]: r for r in rows if r["epoch"] == last}


def _slopes(variants: list[str], act_of: dict[str, str], by_variant: dict[str, list[dict[str, Any]]],
            layers: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for v in variants:
        if act_of[v] != "prelu":
            continue
        done = [x for x in by_variant[v] if x["status"] == "done"]
        per_layer: OrderedDict[int, dict[str, Any]] = OrderedDict()
        over_time: dict[tuple[int, int], list[float]] = defaultdict(list)
        channelwise = False
        for x in done:
            for row in layers[x["key"]]:
                if row["slope_mean"] is not None:
                    over_time[row["layer_index"], row["epoch"]].append(row["slope_mean"])
            for i, row in _last_epoch_rows(layers[x["key"]]).items():
                if row["slope_mean"] is None:
                    continue
                channelwise |= len(row["slopes"] or []) > 1
                entry = per_layer.setdefault(i, {"layer": row["layer"], "values": [], "channel_std": []})
                entry["values"].append(row["slope_mean"])
                ch = row["slopes"] or []
                if len(ch) > 1:
                    m = sum(ch) / len(ch)
                    entry["channel_std"].append(math.sqrt(sum((c - m) ** 2 for c in ch) / (len(ch) - 1)))
        rows = [{"layer_index": i, "layer": e["layer"], **_summary(e["values"]),
                 "channel_std": sum(e["channel_std"]) / len(e["channel_std"]) if e["channel_std"] else None}
                for i, e in per_layer.items()]
        init = next((float(x["prelu_init"]) for x in done if x.get("prelu_init") is not None), None)
        history: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        for (i, ep), vals in sorted(over_time.items()):
            if not history[i] and init is not None:
                history[i].append({"epoch": 0, "mean": init})  # the initial slope, before training
            history[i].append({"epoch": ep, "mean": sum(vals) / len(vals)})
        out.append({"variant": v, "setting": "channel-wise" if channelwise else "shared", "layers": rows,
                    "history": {str(i): h for i, h in history.items()}})
    return out


def _speed(variants: list[str], act_of: dict[str, str], by_variant: dict[str, list[dict[str, Any]]],
           steps: dict[str, list[dict[str, Any]]], target: float, auto: bool) -> dict[str, Any]:
    rows = []
    for v in variants:
        rs = [x for x in by_variant[v] if x["status"] in ("done", "diverged")]
        hits = {x["seed"]: _time_to_target(steps[x["key"]], target) for x in rs}
        reached = [h for h in hits.values() if h is not None]
        rows.append({
            "variant": v, "runs": len(rs), "reached": len(reached),
            "per_seed": {str(s): (None if h is None else {"epochs": h[0], "seconds": h[1]}) for s, h in hits.items()},
            "epochs": _summary([h[0] for h in reached]), "seconds": _summary([h[1] for h in reached]),
        })
    tanh = next((r for r in rows if act_of[r["variant"]] == "tanh" and r["variant"] == "tanh"), None) or next(
        (r for r in rows if act_of[r["variant"]] == "tanh"), None)
    for r in rows:
        complete = tanh is not None and tanh["runs"] and r["runs"] and tanh["reached"] == tanh["runs"] \
            and r["reached"] == r["runs"]
        for unit in ("epochs", "seconds"):
            ok = complete and r[unit]["mean"] > 0
            r[f"{unit}_vs_tanh"] = tanh[unit]["mean"] / r[unit]["mean"] if ok else None
    return {"target_error": target, "auto": auto, "reference": tanh["variant"] if tanh else None, "rows": rows}


def _curves(variants: list[str], by_variant: dict[str, list[dict[str, Any]]],
            epochs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per variant and epoch: means over the finished runs (diverged runs up to where they stopped)."""
    out = {}
    cols = ("train_loss", "train_error", "test_error", "test_loss", "val_error", "train_seconds")
    for v in variants:
        per_epoch: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for x in by_variant[v]:
            if x["status"] == "failed":
                continue
            for e in epochs[x["key"]]:
                per_epoch[e["epoch"]].append(e)
        out[v] = [{"epoch": ep, "n": len(es), **{c: _mean([e[c] for e in es]) for c in cols}}
                  for ep, es in sorted(per_epoch.items())]
    return out


def _mean(values: list[Any]) -> float | None:
    vals = [float(x) for x in values if x is not None]
    return sum(vals) / len(vals) if vals else None


def _layers(variants: list[str], by_variant: dict[str, list[dict[str, Any]]],
            layers: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per variant and layer, at the first and the last epoch: dead and saturated fractions and
    gradient norms, means over the finished runs."""
    out = []
    for v in variants:
        acc: OrderedDict[tuple[int, str], dict[str, list[float]]] = OrderedDict()
        for x in by_variant[v]:
            rows = layers[x["key"]] if x["status"] == "done" else []
            if not rows:
                continue
            first, last = min(r["epoch"] for r in rows), max(r["epoch"] for r in rows)
            for r in rows:
                for when, epoch in (("first", first), ("last", last)):
                    if r["epoch"] != epoch:
                        continue
                    a = acc.setdefault((r["layer_index"], r["layer"]), defaultdict(list))
                    a["units"].append(r["units"])
                    for name in ("dead", "saturated"):
                        if r[name] is not None and r["units"]:
                            a[f"{name}_{when}"].append(r[name] / r["units"])
                    if r["grad_norm"] is not None:
                        a[f"grad_norm_{when}"].append(r["grad_norm"])
        for (i, name), a in acc.items():
            out.append({"variant": v, "layer_index": i, "layer": name, "units": max(a["units"], default=0),
                        **{k: _mean(a.get(k, [])) for k in ("dead_first", "dead_last", "saturated_first",
                                                             "saturated_last", "grad_norm_first", "grad_norm_last")}})
    return out
