"""actlab.lab.train: one run is deterministic, paired across activations, and records what it saw."""

from __future__ import annotations

import json
import math

import pytest
import torch

from actlab.lab import data, models, train
from actlab.lab.plan import RunSpec, parse_variants


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", subset=160, val_fraction=0.2)


def spec(act="relu", **kw):
    v = parse_variants(act)[0]
    return RunSpec(act=v.act, hparams=v.hparams, variant=v.label, **{"epochs": 2, "batch_size": 32, **kw})


def _numbers(r):
    timing = {"seconds", "train_seconds"}
    return [{k: v for k, v in e.items() if k not in timing} for e in r.epochs], \
           [{k: v for k, v in x.items() if k != "grad_norm"} for x in r.layers]


def test_a_run_records_epochs_layers_and_steps(digits):
    r = train.run(spec("prelu:channelwise"), digits)
    assert r.status == "done" and r.error is None and r.device == "cpu"
    assert [e["epoch"] for e in r.epochs] == [1, 2]
    for e in r.epochs:
        assert 0 <= e["train_error"] <= 1 and 0 <= e["test_error"] <= 1 and 0 <= e["val_error"] <= 1
        assert e["seconds"] > 0 and e["lr"] <= 0.02
    assert r.epochs[0]["lr"] == pytest.approx(0.02) and r.epochs[1]["lr"] < 0.02  # warm-up over epoch 1 to the peak, then cosine
    assert r.epochs[1]["train_seconds"] == pytest.approx(r.train_seconds)
    names = [n for n, _ in models.activation_layers(
        models.build("cnn", input_shape=digits.input_shape, num_classes=10, act=train.activation_factory(r.spec)))]
    assert [x["layer"] for x in r.layers] == names * 2
    assert all(len(x["slopes"]) == x["units"] for x in r.layers)  # channel-wise: one slope per unit
    assert r.steps and r.steps[-1]["epoch"] == pytest.approx(2.0)
    assert r.environment["torch"] == torch.__version__ and r.environment["data"]["name"] == "digits"
    again = train.RunResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.spec == r.spec and again.epochs == r.epochs


def test_same_seed_same_numbers(digits):
    a, b = train.run(spec("rrelu"), digits), train.run(spec("rrelu"), digits)
    assert _numbers(a) == _numbers(b)
    c = train.run(spec("rrelu", seed=1), digits)
    assert _numbers(a) != _numbers(c)


def test_runs_with_one_seed_share_the_initial_weights(digits):
    def shared_init(act):
        s = spec(act, seed=3)
        torch.manual_seed(s.seed)
        model = models.build(s.model, input_shape=digits.input_shape, num_classes=10, act=train.activation_factory(s))
        acts = {id(m) for _, m in models.activation_layers(model)}
        return {n: p.detach().clone() for n, p in model.named_parameters()
                if not any(id(mod) in acts for mod in [dict(model.named_modules())[n.rsplit(".", 1)[0]]])}

    ref = shared_init("relu")
    for act in ("tanh", "prelu:channelwise", "rrelu", "elu"):
        other = shared_init(act)
        assert other.keys() == ref.keys()
        assert all(torch.equal(other[k], ref[k]) for k in ref)


def test_rrelu_layers_draw_their_own_noise(digits):
    make = train.activation_factory(spec("rrelu", seed=2))
    a, b = make(4), make(4)
    assert a.seed != b.seed
    state = torch.random.get_rng_state()
    a.train()(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_prelu_slopes_get_no_weight_decay(digits):
    s = spec("prelu", weight_decay=0.1)
    model = models.build("cnn", input_shape=digits.input_shape, num_classes=10, act=train.activation_factory(s))
    groups = {g["name"]: g for g in train._optimizer(s, model).param_groups}
    assert groups["prelu_slopes"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 0.1
    slopes = {id(m.weight) for _, m in models.activation_layers(model)}
    assert {id(p) for p in groups["prelu_slopes"]["params"]} == slopes


def test_divergence_is_a_result(digits):
    r = train.run(spec("relu", lr=1e6, momentum=0.0, schedule="constant"), digits)
    assert r.status == "diverged"
    assert "training loss became" in r.error
    assert "try a lower --lr (this run: 1e+06)" in r.error and "--lr 100000,300000,1e+06" in r.error
    assert "--warmup" in r.error and "--batchnorm" in r.error
    assert len(r.epochs) < 2
    assert any(s["loss"] is None or not math.isfinite(s["loss"]) for s in r.steps)


def test_adam_and_the_other_models():
    mlp_data = data.load("digits", subset=60, val_fraction=0.0)
    r = train.run(spec("elu", optimizer="adam", lr=1e-3, epochs=1, model="mlp", depth=2, width=0.25), mlp_data)
    assert r.status == "done" and math.isnan(r.epochs[0]["val_error"])


def test_pick_device():
    assert train.pick_device("cpu") == "cpu"
    assert train.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid device 'tpu'"):
        train.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train.pick_device("cuda")


def test_failed_record():
    r = train.failed(spec(), "RuntimeError: out of memory", device="cpu")
    assert r.status == "failed" and r.epochs == [] and "out of memory" in r.error


def test_first_calls_are_warmed_before_the_clock_starts(digits, monkeypatch):
    # A kernel's first call compiles it (numba: ~1 min on a cold cache). Here an activation whose
    # first call in training and in evaluation each costs 1.5 s stands for one: that time must
    # fall in the untimed warm-up, not in the run's training or evaluation seconds.
    import time

    import actlab

    first = {"train": True, "eval": True}

    class ColdReLU(type(actlab.layer("relu"))):
        def forward(self, x):
            mode = "train" if torch.is_grad_enabled() else "eval"
            if first[mode]:
                first[mode] = False
                time.sleep(1.5)
            return super().forward(x)

    monkeypatch.setattr(train, "activation_factory", lambda s: lambda channels: ColdReLU())
    r = train.run(spec("relu", epochs=2), digits)
    assert r.status == "done" and not any(first.values())
    assert r.train_seconds < 1.5 and r.eval_seconds < 1.5 and r.wall_seconds > 3
    assert sum(e["seconds"] for e in r.epochs) == pytest.approx(r.train_seconds)  # per epoch, stored
    assert r.steps[-1]["train_seconds"] == pytest.approx(r.train_seconds)


@pytest.mark.parametrize("warmup, schedule, epochs", [(1.0, "cosine", 4), (0.5, "constant", 3), (3.0, "cosine", 2),
                                                      (0.0, "cosine", 2)])
def test_learning_rate_warms_up_then_follows_the_schedule(warmup, schedule, epochs):
    s = spec(warmup=warmup, schedule=schedule, epochs=epochs, lr=0.1)
    steps_per_epoch = 10
    total = epochs * steps_per_epoch
    warm = round(min(warmup * steps_per_epoch, total / 2))  # at most half the run
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=s.lr)
    sched = train._schedule(s, opt, steps_per_epoch)
    rates = []
    for _ in range(total):  # the rate each step trains with
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[:warm] == pytest.approx([0.1 * (t + 1) / warm for t in range(warm)])  # linear from lr/W to lr
    after = rates[warm:]
    assert after[0] == pytest.approx(0.1)
    if schedule == "constant":
        assert after == pytest.approx([0.1] * len(after))
    else:  # cosine from the peak towards 0 over the rest of the run
        rest = len(after)
        assert after == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * k / rest)) for k in range(rest)])


def test_the_default_warm_up_keeps_elu_stable_on_28x28_images(tmp_path):
    # The reported failure in miniature: on 28×28 grey images (scikit-learn's digits scaled up to
    # MNIST's size and range), ELU at the default lr without warm-up blows up in its first steps
    # (on MNIST itself its loss became NaN at step 15); the default warm-up keeps it on course.
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.nn.functional.interpolate(torch.tensor(d.images[:, None], dtype=torch.float32), size=(28, 28),
                                          mode="bilinear")[:, 0].numpy()
    img = (img * 16).clip(0, 255).astype(np.uint8)
    np.savez(tmp_path / "digits28.npz", x_train=img[:1200], y_train=d.target[:1200], x_test=img[1600:1700],
             y_test=d.target[1600:1700])
    ds = data.load(str(tmp_path / "digits28.npz"), val_fraction=0.0)
    assert ds.input_shape == (1, 28, 28)
    cold = train.run(spec("elu", epochs=1, batch_size=64, warmup=0.0), ds)
    warm = train.run(spec("elu", epochs=1, batch_size=64), ds)
    cold_losses = [s["loss"] if s["loss"] is not None else math.inf for s in cold.steps]
    warm_losses = [s["loss"] for s in warm.steps]
    assert max(cold_losses) > 10  # ln 10 = 2.3 is chance level
    assert warm.status == "done" and max(warm_losses) < 4 and warm_losses[-1] < 1
