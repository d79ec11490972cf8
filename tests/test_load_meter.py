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
