"""Two gloo processes on CPU reproduce the single-process NAPO loss, state and gradients.

Each rank holds half of a global micro-batch, gathers it with ``recbench.losses.gather_batch`` (autograd
all_gather), runs NAPO and back-propagates following the rule documented in
``losses/distributed.py``.  The parent process compares with one process running the whole batch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recbench import losses

WORLD = 2
B_GLOBAL, N_NEG, DIM = 8, 3, 4
NAPO_HPARAMS = {"rho": 0.7, "detach_negatives": "none"}


def global_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    ids = torch.arange(B_GLOBAL)
    ids[5] = ids[1]  # a duplicated training example split across the two ranks
    return {
        "chosen_logps": torch.randn(B_GLOBAL, generator=gen, dtype=torch.float64) * 3 - 5,
        "rejected_logps": torch.randn(B_GLOBAL, N_NEG, generator=gen, dtype=torch.float64) * 3 - 6,
        "seq_embeddings": torch.randn(B_GLOBAL, DIM, generator=gen, dtype=torch.float64),
        "rejected_scores": torch.randn(B_GLOBAL, N_NEG, generator=gen, dtype=torch.float64),
        "example_ids": ids,
    }


GRAD_FIELDS = ("chosen_logps", "rejected_logps")


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        b_local = B_GLOBAL // WORLD
        rows = slice(rank * b_local, (rank + 1) * b_local)
        local = {name: value[rows].clone() for name, value in global_inputs().items()}
        for name in GRAD_FIELDS:
            local[name].requires_grad_(True)
        module = losses.get_loss("napo", **NAPO_HPARAMS)
        out = module(losses.gather_batch(losses.PreferenceBatch(**local)))
        assert losses.local_rows(b_local) == rows
        leaves = [local[name] for name in GRAD_FIELDS]
        # DDP style: every rank back-propagates the global mean; DDP then averages over ranks.
        grads_mean = torch.autograd.grad(out.loss, leaves, retain_graph=True)
        # Same, but each rank back-propagates the mean of its own rows.
        own_mean = out.per_example[losses.local_rows(b_local)].mean()
        grads_own_mean = torch.autograd.grad(own_mean, leaves, retain_graph=True)
        # Exact style: the local rows' share of the global mean.
        share = out.per_example[losses.local_rows(b_local)].sum() / B_GLOBAL
        grads_share = torch.autograd.grad(share, leaves)
        torch.save(
            {
                "loss": out.loss.detach(),
                "per_example": out.per_example.detach(),
                "gamma": torch.as_tensor(out.metrics["gamma"]),
                "M_run": module.M_run.clone(),
                "grads_mean": [g / WORLD for g in grads_mean],
                "grads_own_mean": [g / WORLD for g in grads_own_mean],
                "grads_share": list(grads_share),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        # both ranks done with every collective before either tears gloo down: without it, a
        # rank that destroys its group while the other still talks to it can abort (seen ~1 in
        # 5 runs on a 2-core Xeon: "terminate called without an active exception", SIGABRT)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    if any(name == "lo" for _, name in socket.if_nameindex()):
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # stay on loopback in sandboxes
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)

    inputs = global_inputs()
    for name in GRAD_FIELDS:
        inputs[name].requires_grad_(True)
    module = losses.get_loss("napo", **NAPO_HPARAMS)
    single = module(losses.PreferenceBatch(**inputs))
    single.loss.backward()
    # the duplicated example really is excluded from its twin's neighbours in both runs
    nbrs = module.neighbours(losses.PreferenceBatch(**inputs))
    assert 5 not in nbrs.index[1].tolist() and 1 not in nbrs.index[5].tolist()

    b_local = B_GLOBAL // WORLD
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        rows = slice(rank * b_local, (rank + 1) * b_local)
        torch.testing.assert_close(got["loss"], single.loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            got["per_example"], single.per_example.detach(), rtol=1e-12, atol=1e-12
        )
        torch.testing.assert_close(got["gamma"], torch.as_tensor(single.metrics["gamma"]))
        torch.testing.assert_close(got["M_run"], module.M_run)
        for style in ("grads_mean", "grads_own_mean", "grads_share"):
            for name, grad in zip(GRAD_FIELDS, got[style], strict=True):
                torch.testing.assert_close(
                    grad, inputs[name].grad[rows], rtol=1e-10, atol=1e-12, msg=f"{style} {name}"
                )
