"""The chapter's claims that ``actlab verify`` puts to the test: number, name, the sentence.

Sentences restate chapter 8 (see the chapter page in the repository's shared notes and
:mod:`actlab.registry`'s references); ``rule`` says, in words, what decides (the code is in
:mod:`actlab.verify.rules`, the thresholds are its constants).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import rules

__all__ = ["Claim", "CLAIMS", "ids", "parse_only"]


@dataclass(frozen=True)
class Claim:
    id: int
    name: str  # short slug, accepted by --only
    sentence: str  # the chapter's claim
    rule: str  # the decision rule in words


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "saturation",
          "Sigmoid and tanh saturate: for |x| large the gradient is ≈ 0, errors cannot flow back to earlier layers; "
          "in a deep plain network the gradient reaching the first layer is orders of magnitude smaller than with "
          "ReLU.",
          f"for sigmoid and for tanh, the 95% interval of mean log10(first-layer gradient norm / ReLU's, same seed) "
          f"lies below {rules.ORDERS_THRESHOLD:g} (ten times smaller or less); both must hold"),
    Claim(2, "zero-centred",
          "Sigmoid's outputs are all positive, so their mean is not 0 (tanh's is); the next layer's weight "
          "gradients then share one sign and SGD zig-zags.",
          f"sigmoid − tanh, paired by seed: mean |layer mean activation| above {rules.MEAN_SHIFT_THRESHOLD:g} and "
          f"gradient sign agreement above {rules.ZIGZAG_THRESHOLD:g} (whole 95% intervals)"),
    Claim(3, "dead-zone",
          "ReLU's gradient is 0 for x < 0: units that go negative stop learning (the dead zone), more so with a large "
          "learning rate; Leaky ReLU, PReLU, RReLU and ELU have no dead zone.",
          f"ReLU's dead share at the largest lr minus at the smallest (paired) above {rules.DEAD_GROWTH_THRESHOLD:g}; "
          f"for each of the four others the dead share's upper 95% bound below {rules.NO_DEAD_THRESHOLD:g}"),
    Claim(4, "relu-speed",
          "With ReLU, SGD converges about 6× faster than with tanh (Krizhevsky et al.: a 4-layer CNN on CIFAR-10 "
          "reaches "
          "25% training error six times sooner, each network at its own best learning rate).",
          f"the 95% interval of the geometric-mean ratio tanh / ReLU of epochs to 25% training error lies above "
          f"{rules.SPEEDUP_THRESHOLD:g} (the 6× within a factor of two), on every data set (the chapter states it "
          "generally); runs that never reach the target count as the whole budget, a bound that can only prove "
          "(tanh) or only refute (ReLU)"),
    Claim(5, "prelu-slopes",
          "PReLU in He et al.'s 14-layer network learns a large slope in the first layer and smaller ones deeper: "
          "channel-wise slopes shrink from shallow to deep layers (Table 8.1).",
          "for shared and for channel-wise PReLU, the 95% interval of the mean Spearman ρ(depth, learned slope) lies "
          "below 0"),
    Claim(6, "prelu-order",
          "In error, channel-wise PReLU ≤ shared PReLU ≤ ReLU (Table 8.2: 32.64 < 32.71 < 33.82 top-1).",
          "test error shared − ReLU and channel-wise − shared, paired by seed, both with 95% intervals below 0"),
    Claim(7, "prelu-overfits",
          "PReLU's extra freedom brings a risk of overfitting, most with little data.",
          "PReLU's train–test gap minus ReLU's, on the smallest training set minus on the largest (paired), has its "
          "95% interval above 0"),
    Claim(8, "rrelu-regularises",
          "RReLU's random slope acts as a regulariser.",
          "train–test gap of RReLU minus Leaky ReLU at RReLU's mean slope (paired), on the smallest training set, has "
          "its 95% interval below 0"),
    Claim(9, "elu",
          "ELU keeps ReLU's advantages, pushes mean activations towards zero and removes the dead zone.",
          f"mean |layer mean activation| ReLU − ELU (paired) with its 95% interval above 0, and ELU's dead share's "
          f"upper bound below {rules.NO_DEAD_THRESHOLD:g}"),
    Claim(10, "no-winner",
          "There is no consistent conclusion on which of Leaky ReLU, PReLU, RReLU and ELU is best: it depends on the "
          "problem and must be measured on it.",
          "does not hold if one activation is significantly better (paired 95% interval) than every other on every "
          "data set; holds if every one is significantly beaten on some data set; inconclusive otherwise"),
)


def ids() -> list[int]:
    return [c.id for c in CLAIMS]


def parse_only(items: list[str] | None) -> list[int]:
    """``--only`` values (numbers or names, comma-separated or repeated) → claim ids, in order."""
    if not items:
        return ids()
    by_name = {c.name: c.id for c in CLAIMS}
    chosen: set[int] = set()
    for item in items:
        for token in str(item).split(","):
            t = token.strip().lower()
            if not t:
                continue
            if t.isdigit() and int(t) in ids():
                chosen.add(int(t))
            elif t in by_name:
                chosen.add(by_name[t])
            else:
                raise ValueError(f"--only {token.strip()!r}: unknown claim; valid: 1-{len(CLAIMS)} or "
                                 f"{', '.join(by_name)}")
    return [i for i in ids() if i in chosen]
