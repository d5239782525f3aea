"""The warm output pool of the CPU fast path (actlab.fast.pool): reuse only what nobody holds."""

from __future__ import annotations

import gc
import threading

import pytest
import torch

import actlab
from actlab.fast import pool

pytest.importorskip("numba")

N = 1 << 18  # 1 MiB of float32: above pool.MIN_BYTES, above the fast path's size floor (actlab.fast.Policy)


@pytest.fixture(autouse=True)
def fresh_pool():
    """Each test starts from an empty pool with the default cap, and leaves one."""
    cap = pool.stats()["max_bytes"]
    gc.collect()  # outputs other tests left in reference cycles
    pool.release()
    yield
    pool.configure(cap)
    pool.release()


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(N, generator=torch.Generator().manual_seed(seed))


def test_an_output_nobody_holds_is_reused_warm():
    elu = actlab.layer("elu")
    y = elu(_x())
    ptr = y.data_ptr()
    del y
    before = pool.stats()["hits"]
    y2 = elu(_x(1))
    assert y2.data_ptr() == ptr and pool.stats()["hits"] == before + 1
    torch.testing.assert_close(y2, actlab.layer("elu", impl="plain")(_x(1)))


def test_held_outputs_and_their_views_are_never_handed_out_again():
    elu = actlab.layer("elu")
    y1 = elu(_x(0))
    view = y1[: N // 2]
    del y1
    y2 = elu(_x(1))
    assert y2.data_ptr() != view.data_ptr()
    torch.testing.assert_close(view, actlab.layer("elu", impl="plain")(_x(0))[: N // 2])


def test_an_output_saved_for_backward_survives_later_forwards():
    x = _x(0).requires_grad_(True)
    for name in ("elu", "tanh", "sigmoid"):
        fast, plain = actlab.layer(name, impl="fast"), actlab.layer(name, impl="plain")
        y = fast(x)  # keeps y for backward
        for seed in range(1, 4):  # outputs that must not land on y's storage
            fast(_x(seed))
        (got,) = torch.autograd.grad(y, x, torch.ones(N))
        (want,) = torch.autograd.grad(plain(x), x, torch.ones(N))
        torch.testing.assert_close(got, want, msg=name)


def test_outputs_are_not_views_so_in_place_ops_on_them_work_with_autograd():
    x = _x().requires_grad_(True)
    y = actlab.layer("prelu", impl="fast")(x)
    assert y._base is None
    y.mul_(3)  # a view made inside a custom Function would refuse this
    (got,) = torch.autograd.grad(y, x, torch.ones(N))
    (want,) = torch.autograd.grad(actlab.layer("prelu", impl="plain")(x) * 3, x, torch.ones(N))
    torch.testing.assert_close(got, want)


def test_the_cap_bounds_what_the_pool_holds_and_beyond_it_outputs_are_plain():
    in_use = pool.stats()["held_bytes"]  # outputs of earlier tests still alive somewhere
    pool.configure(in_use + N * 4 * 2)  # room for two more outputs
    elu = actlab.layer("elu")
    held = [elu(_x(s)) for s in range(4)]
    s = pool.stats()
    assert s["held_bytes"] == in_use + N * 4 * 2 and s["fallbacks"] >= 2
    for seed, y in enumerate(held):  # all four correct, pooled or not
        torch.testing.assert_close(y, actlab.layer("elu", impl="plain")(_x(seed)))


def test_a_new_size_evicts_idle_storages_of_other_sizes_at_the_cap():
    in_use = pool.stats()["held_bytes"]
    pool.configure(in_use + N * 4)
    elu = actlab.layer("elu")
    elu(_x())  # one idle N-element storage fills the cap
    before = pool.stats()["fallbacks"]
    y = elu(torch.randn(N // 2))
    assert pool.stats()["fallbacks"] == before and pool.stats()["held_bytes"] == in_use + N * 2
    assert y.numel() == N // 2


def test_release_and_zero_cap_turn_it_off():
    elu = actlab.layer("elu")
    in_use = pool.stats()["held_bytes"]
    elu(_x())
    assert pool.stats()["idle_bytes"] == N * 4
    assert pool.release() == N * 4 and pool.stats()["held_bytes"] == in_use
    pool.configure(0)
    elu(_x())
    assert pool.stats()["held_bytes"] == in_use


def test_a_storage_resized_by_its_user_is_dropped_not_reused():
    y = pool.empty_strided((N,), (1,), torch.float32)
    y.resize_(2 * N)  # grows the shared storage in place
    del y
    z = pool.empty_strided((N,), (1,), torch.float32)
    assert z.untyped_storage().nbytes() == N * 4


def test_small_outputs_bypass_the_pool():
    before = pool.stats()
    pool.empty_strided((16,), (1,), torch.float32)
    after = pool.stats()
    assert (after["held_bytes"], after["misses"], after["hits"]) == (before["held_bytes"], before["misses"],
                                                                     before["hits"])


def test_channels_last_strides_are_kept():
    x = torch.randn(4, 32, 32, 32).contiguous(memory_format=torch.channels_last)
    y = pool.empty_strided(x.shape, x.stride(), x.dtype)
    assert y.stride() == x.stride() and y.is_contiguous(memory_format=torch.channels_last)


def test_threads_never_share_an_output():
    elu, plain = actlab.layer("elu"), actlab.layer("elu", impl="plain")
    errors: list[str] = []

    def work(seed: int) -> None:
        x = _x(seed)
        for _ in range(20):
            y = elu(x)
            if not torch.equal(y, elu(x)) or not torch.allclose(y, plain(x)):
                errors.append(f"thread {seed}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("text,why", [("lots", "is not a number"), ("-5", "is negative")])
def test_a_bad_cap_in_the_environment_is_one_clear_error(monkeypatch, text, why):
    monkeypatch.setenv("ACTLAB_CPU_POOL_MB", text)
    with pytest.raises(ValueError, match=why):
        pool._default_max_bytes()
    monkeypatch.setenv("ACTLAB_CPU_POOL_MB", "1.5")
    assert pool._default_max_bytes() == 3 * 2**19


def test_configure_rejects_a_negative_cap():
    with pytest.raises(ValueError, match="max_bytes=-1 is negative"):
        pool.configure(-1)


def test_a_bad_cap_in_the_environment_is_one_line_from_the_command(monkeypatch):
    import os
    import subprocess
    import sys

    env = dict(os.environ, ACTLAB_CPU_POOL_MB="lots")
    r = subprocess.run([sys.executable, "-c", "import sys; from actlab.cli import main; sys.exit(main())",
                        "bench", "--sizes", "64K", "--acts", "elu", "--repeats", "1", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "actlab: error: ACTLAB_CPU_POOL_MB='lots' is not a number; valid: megabytes >= 0, 0 turns the pool off"]


def test_storage_reachable_through_untyped_storage_is_never_handed_out():
    """``y.untyped_storage()`` returns the pool's own storage object (its C++ use count stays 1
    while the caller holds it), so the use count alone would hand the memory out again."""
    elu = actlab.layer("elu")
    y = elu(_x())
    kept = y.untyped_storage()
    want = y.clone()
    del y
    others = [elu(_x(s)) for s in range(1, 4)]  # same size: each would take an idle storage
    got = torch.empty(0).set_(kept, 0, (N,), (1,))
    assert torch.equal(got, want), "the pool overwrote a storage still reachable through untyped_storage()"
    assert all(o.untyped_storage().data_ptr() != kept.data_ptr() for o in others)
    del got, kept, others
    y2 = elu(_x(9))  # with nothing left holding them, the storages are reused
    assert pool.stats()["hits"] >= 1 and y2.numel() == N
