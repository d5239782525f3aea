"""actlab.machine: the load readings that mark a benchmark taken on a busy machine."""

from __future__ import annotations

import time

import pytest

from actlab import machine

linux = pytest.mark.skipif(machine._cpu_jiffies() is None, reason="needs /proc (Linux)")


@linux
def test_a_spinning_neighbour_shows_as_other_processes_cpu():
    helper = machine.busy_process(30)
    try:
        time.sleep(0.3)  # let it start spinning
        with machine.LoadMeter() as m:
            time.sleep(1.5)  # this process idles: whatever is busy is someone else
        r = m.result()
    finally:
        helper.kill()
        helper.wait()
    assert r["others_cores"] >= 0.3  # the spinner had at least a third of a core
    assert r["busy"] is True
    assert len(r["loadavg_before"]) == 3


@linux
def test_the_expected_load_is_subtracted_and_own_work_is_not_counted():
    with machine.LoadMeter(expected_cores=64.0) as m:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # our own CPU use: never "other processes"
            pass
    r = m.result()
    assert r["others_cores"] == 0.0 and r["busy"] is False
    assert r["expected_load_cores"] == 64.0


def test_busy_process_ends_by_itself():
    helper = machine.busy_process(0.2)
    assert helper.wait(timeout=20) == 0
