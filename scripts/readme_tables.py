"""Print the README's results table from the main job's results database.

    python scripts/readme_tables.py [DIR]        (default DIR: runs/digits, what `make run` writes)

If DIR holds no results database yet, the main job runs first (`actlab compare --out DIR`, the
README's defaults). Every number printed is the report's (actlab.lab.analysis); the notes say only
what the report measured (test and training error, saturated and dead units, gradient norms), so
the README can quote this output as it is.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from actlab import cli
from actlab.lab import analysis
from actlab.lab.store import DB_NAME, Store


def _f(x: float, spec: str) -> str:
    s = format(x, spec)
    return format(0.0, spec.replace("+", "")) if float(s) == 0 else s.replace("-", "−")


def _ms(s) -> str:
    return f"{_f(100 * s.mean, '.2f')} ± {_f(100 * s.std, '.2f')}" if math.isfinite(s.std) else _f(100 * s.mean, ".2f")


def _measured(g, v: str) -> str:
    """What the report measured about a variant that stayed near chance; '' for one that learned."""
    t = next(x for x in g.table if x.variant == v)
    chance = 1 - 1 / g.data["classes"] if g.data.get("classes") else 0.9
    if not (math.isfinite(t.final.mean) and t.final.mean >= 0.9 * chance):  # near chance, not merely poor
        return ""
    runs = [r for r in g.chosen_runs(v) if r.status == "done"]
    train = sum(r.final_train_error for r in runs) / len(runs) if runs else math.nan
    rows = sorted((r for r in g.layers if r.variant == v), key=lambda r: r.layer_index)
    sat = max((r.saturated_last for r in rows if r.saturated_last is not None), default=None)
    parts = [f"at chance: training error {_f(100 * train, '.1f')} % after the last epoch"]
    if sat is not None:
        parts.append(f"saturated units at most {_f(100 * sat, '.1f')} % of a layer")
    if rows and rows[0].grad_norm_first is not None and rows[-1].grad_norm_first is not None:
        parts.append(f"gradient norm {rows[0].grad_norm_first:.2g} at {rows[0].layer} vs "
                     f"{rows[-1].grad_norm_first:.2g} at {rows[-1].layer} in epoch 1")
    return "; ".join(parts)


def table(directory: Path) -> str:
    with Store.open(directory) as store:
        a = analysis.analyse(store)
    out = []
    for g in a.groups:
        s = g.setting
        out.append(f"{g.data.get('name', s['data'])}, {s['model']}, {s['epochs']} epochs, {len(g.seeds)} seeds, "
                   f"lr {', '.join(f'{x:g}' for x in g.lr.lrs)}; {len(g.runs)} runs:\n")
        grid = g.lr.grid
        out.append("| activation |" + (" lr |" if grid else "") + " final test error % (mean ± std) | IQM [95% CI] "
                   f"| Δ vs {g.baseline} (pp) | Holm p | measured |")
        out.append("|---|" + ("---|" if grid else "") + "---|---|---|---|---|")
        paired = {e.variant: e.final for e in g.paired}
        for t in g.table:
            e = paired.get(t.variant)
            iqm = (f"{_f(100 * t.iqm.value, '.2f')} [{_f(100 * t.iqm.ci_low, '.2f')}, {_f(100 * t.iqm.ci_high, '.2f')}]"
                   if math.isfinite(t.iqm.ci_low) else "—")
            delta = _f(100 * e.mean_diff, "+.2f") if e and math.isfinite(e.mean_diff) else "—"
            holm = f"{e.p_holm:.2g}" if e and math.isfinite(e.p_holm) else "—"
            note = "baseline" if t.variant == g.baseline else _measured(g, t.variant)
            if t.diverged or t.failed:
                note = "; ".join(x for x in (note, f"{t.diverged} diverged, {t.failed} failed") if x)
            out.append(f"| {t.variant} |" + (f" {t.lr:g} |" if grid else "") +
                       f" {_ms(t.final)} | {iqm} | {delta} | {holm} | {note} |")
        out.append("")
        out.append(g.summary)
        out.append("")
        out.append(g.power)
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else Path("runs") / "digits"
    if not (directory / DB_NAME).is_file():
        rc = cli.main(["compare", "--out", str(directory), "--quiet"])
        if rc:
            return rc
    print(table(directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
