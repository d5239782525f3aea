"""``actlab compare``: plan → run what the database lacks → store each result → report.

Rerunning the same comparison into the same directory resumes it: the plan's runs whose key the
database already holds (status done or diverged) are skipped; failed runs are retried. Each
result is stored in one transaction as soon as it arrives, so killing the process loses only
the run in flight.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from . import models, report, train
from .executor import Executor, LocalExecutor
from .plan import Comparison, RunSpec, plan
from .store import DB_NAME, Store

__all__ = ["compare", "Outcome", "default_out"]


@dataclass
class Outcome:
    """What a compare call did."""

    directory: Path
    planned: int
    skipped: int  # already in the database
    ran: int
    done: int
    diverged: int
    failed: int
    seconds: float
    report: dict[str, Path]


def default_out(data_spec: str) -> Path:
    """``runs/<data name>``: ``digits`` → ``runs/digits``, ``path/to/imgs/`` → ``runs/imgs``."""
    name = Path(str(data_spec).split("=", 1)[-1].rstrip("/\\")).stem or "data"
    return Path("runs") / name


def _check_builds(specs: Sequence[RunSpec], dataset: Any, device: str) -> None:
    """Build each variant's model once and push two examples through it, so that a variant that
    cannot run on this model and data fails now, in one line, rather than in every run."""
    seen = set()
    example = dataset.x_train[:2]
    for spec in specs:
        if spec.act_key in seen:
            continue
        seen.add(spec.act_key)
        with torch.random.fork_rng(devices=[]):
            try:
                model = models.build(spec.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                                     act=train.activation_factory(spec), width=spec.width, depth=spec.depth,
                                     batchnorm=spec.batchnorm, init=spec.init)
                model.eval()
                with torch.no_grad():
                    model(example)
            except (ValueError, RuntimeError, TypeError) as err:
                raise ValueError(f"{spec.variant} on model {spec.model}: {str(err).splitlines()[0]}") from None


def compare(comparison: Comparison, out: str | Path, *, device: str = "auto", quiet: bool = False,
            download: bool = False, target_error: float | None = None, argv: Sequence[str] | None = None,
            executor: Executor | None = None) -> Outcome:
    """Run ``comparison`` into directory ``out`` (resuming what it holds) and write the report.

    ``comparison.model`` may be ``"auto"``: the model that fits the data's shape.
    """
    t0 = time.perf_counter()
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if target_error is not None and not (0 < target_error < 1):
        raise ValueError(f"invalid target_error={target_error!r}; valid: a number in (0, 1)")
    comparison.check()
    device = train.pick_device(device)
    local = LocalExecutor(device=device, progress=not quiet, download=download)
    dataset = local.dataset(RunSpec(data=comparison.data, subset=comparison.subset,
                                    val_fraction=comparison.val_fraction))
    if comparison.model == "auto":
        comparison = dataclasses.replace(comparison, model=models.default_for(dataset.input_shape))
    specs = plan(comparison)
    _check_builds(specs, dataset, device)

    out = Path(out)
    with Store.open(out, create=True) as store:
        settings = {**comparison.settings(), "target_error": target_error, "device": device}
        store.add_invocation(list(argv) if argv is not None else sys.argv, settings, train.environment(device))
        finished = store.finished()
        todo = [s for s in specs if s.key not in finished]
        grid = f" × {len(comparison.lrs)} learning rates" if len(comparison.lrs) > 1 else ""
        say(f"actlab compare: {len(specs)} runs ({len(comparison.variants)} variants{grid} × {comparison.seeds} seeds, "
            f"{comparison.model} on {dataset!r}) → {out / DB_NAME}; {len(specs) - len(todo)} already there, "
            f"running {len(todo)} on {device}")
        counts = {"done": 0, "diverged": 0, "failed": 0}
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="runs", unit="run", disable=True if quiet else None, file=sys.stderr, dynamic_ncols=True)
        for result in (executor or local).map(todo):
            store.save(result)
            counts[result.status] += 1
            bar.update(1)
            if not quiet:
                last = result.epochs[-1] if result.epochs else {}
                err = last.get("test_error")
                note = (f"test error {100 * err:.2f}%" if err is not None and result.status == "done"
                        else report.one_line(result.error, 320))
                at = f" lr {result.spec.lr:g}" if len(comparison.lrs) > 1 else ""
                bar.write(f"  {result.spec.variant:<28} seed {result.spec.seed}{at}: {result.status:<8} {note}  "
                          f"({result.train_seconds:.1f} s training)", file=sys.stderr)
        bar.close()
    paths = report.write(out, target_error=target_error)
    return Outcome(out, len(specs), len(specs) - len(todo), len(todo), counts["done"], counts["diverged"],
                   counts["failed"], time.perf_counter() - t0, paths)
