"""results.LoadMeter: the CPU share and machine load a run's cost records carry."""

from __future__ import annotations

import time

import pytest
import torch

from recbench.results import LoadMeter


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_busy_run_uses_its_thread_and_a_sleeping_one_does_not(one_thread):
    busy = LoadMeter()
    deadline = time.perf_counter() + 0.4
    while time.perf_counter() < deadline:  # one thread spinning: utilisation near 1
        pass
    # generous bounds: on a loaded machine the spinning thread gets only part of a core (0.23
    # at nice 19 next to a 2-thread training job on 2 cores), which is what the meter is for
    assert 0.05 < busy.readings()["cpu_utilisation"] <= 1.1
    idle = LoadMeter()
    time.sleep(0.4)  # no CPU time at all: utilisation near 0
    readings = idle.readings()
    assert readings["cpu_utilisation"] < 0.05
    assert readings["load_average"] >= 0.0


def test_waiting_for_another_process_lock_is_not_counted_as_a_slow_run(
    one_thread, tmp_path, monkeypatch
):
    """A run that waited for another process to build a shared stage was idle: the wait is
    reported as lock_wait and left out of the wall time its CPU use is measured over."""
    import subprocess
    import sys

    from recbench import locks

    monkeypatch.setenv("RECBENCH_HOME", str(tmp_path / "home"))
    target = tmp_path / "stage"
    script = (
        "import pathlib, time\nfrom recbench import locks\n"
        f"with locks.exclusive(pathlib.Path({str(target)!r}), 'x'):\n"
        "    print('held', flush=True)\n    time.sleep(1.0)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    meter = LoadMeter()
    wall, cpu = time.perf_counter(), time.process_time()
    with locks.exclusive(target, "the test stage", quiet=True):  # waits for the holder
        pass
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:  # then works
        pass
    holder.wait(timeout=30)
    readings = meter.readings()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert 0.3 < readings["lock_wait"] < 5.0  # about the holder's remaining second
    # CPU use over the time it did not wait (one thread): not diluted by the wait
    expected = cpu / (wall - readings["lock_wait"])
    assert readings["cpu_utilisation"] == pytest.approx(expected, rel=0.05)
