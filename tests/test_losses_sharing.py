"""In-batch negative sharing: K, neighbour choice, pooling, degenerate batches (docs/losses.md)."""

from __future__ import annotations

import pytest
import torch
from recbench.losses.sharing import Neighbours

from recbench import losses
from recbench.errors import UserError


@pytest.mark.parametrize(
    ("b", "rho", "k"),
    [(1, 0.7, 0), (2, 0.7, 0), (4, 0.7, 2), (16, 0.7, 10), (8, 1.0, 7), (8, 0.0, 0), (3, 0.5, 1)],
)
def test_k_formula(b: int, rho: float, k: int) -> None:
    assert losses.num_shared_neighbours(b, rho) == k


def test_k_robust_floor_differs_from_int() -> None:
    """0.58 * 50 = 28.999999999999996 in binary floating point: int() loses a neighbour."""
    assert losses.num_shared_neighbours(51, 0.58, "robust") == 29
    assert losses.num_shared_neighbours(51, 0.58, "int") == 28


def test_neighbours_exclude_self_and_equal_ids() -> None:
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.9, 0.0], [0.0, 1.0]])
    by_position = losses.find_neighbours(emb, 2)
    assert by_position.index.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]
    # rows 0 and 1 are the same training example: neither may borrow from the other
    ids = torch.tensor([7, 7, 8, 9])
    by_id = losses.find_neighbours(emb, 2, ids)
    assert by_id.index[:2].tolist() == [[2, 3], [2, 3]]
    assert by_id.valid.all()


def test_neighbours_invalid_when_too_few_distinct_examples() -> None:
    emb = torch.randn(3, 2)
    nbrs = losses.find_neighbours(emb, 2, torch.tensor([1, 1, 2]))
    assert nbrs.valid.tolist() == [[True, False], [True, False], [True, True]]
    assert nbrs.index[0, 0].item() == 2 and nbrs.index[1, 0].item() == 2
    mask = nbrs.pool_mask(2)
    assert mask.shape == (3, 6)
    assert mask.tolist()[0] == [True, True, True, True, False, False]


def test_ties_broken_by_ascending_index() -> None:
    emb = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert losses.find_neighbours(emb, 3).index[0].tolist() == [1, 2, 3]
    assert losses.find_neighbours(emb, 3).index[4].tolist() == [1, 2, 3]


def test_pool_layout_and_owner_pairing() -> None:
    nbrs = Neighbours(index=torch.tensor([[2], [0], [1]]), valid=torch.ones(3, 1, dtype=torch.bool))
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    pooled = nbrs.pool(values)
    assert pooled.tolist() == [[1, 2, 5, 6], [3, 4, 1, 2], [5, 6, 3, 4]]
    receiver = torch.arange(18.0).reshape(3, 3, 2)  # [u, v, j] = 6u + 2v + j
    assert nbrs.pool_receiver(receiver).tolist() == [
        [0, 1, 4, 5],  # u=0: own [0,0,:], neighbour 2 -> [0,2,:]
        [8, 9, 6, 7],  # u=1: own [1,1,:], neighbour 0 -> [1,0,:]
        [16, 17, 14, 15],  # u=2: own [2,2,:], neighbour 1 -> [2,1,:]
    ]


def test_empty_neighbour_table() -> None:
    nbrs = Neighbours.none(3)
    values = torch.randn(3, 2)
    assert torch.equal(nbrs.pool(values), values)
    assert nbrs.pool_mask(2).all() and nbrs.pool_mask(2).shape == (3, 2)
    assert nbrs.pool_receiver(torch.randn(3, 3, 2)).shape == (3, 2)


def _batch(b: int, n: int, key: str = "napo") -> losses.PreferenceBatch:
    """Every field; the scores in the form ``key`` declares them."""
    gen = torch.Generator().manual_seed(b * 10 + n)
    batch = losses.PreferenceBatch(
        chosen_logps=torch.randn(b, generator=gen),
        rejected_logps=torch.randn(b, n, generator=gen),
        ref_chosen_logps=torch.randn(b, generator=gen),
        ref_rejected_logps=torch.randn(b, n, generator=gen),
        chosen_lengths=torch.ones(b),
        rejected_lengths=torch.ones(b, n),
        seq_embeddings=torch.randn(b, 3, generator=gen),
        rejected_scores=torch.randn(b, n, generator=gen),
        receiver_scores=torch.rand(b, b, n, generator=gen) * 2 - 1,
    )
    if "chosen_scores" in losses.get_spec(key).requires:
        # RecDPO/RecPO (docs/losses.md): decayed ratings, s- in (0, 1) and s+ >= 1, so the
        # ratio margin (s- > 0) and the log margins (1 + s+ - s- > 0) are all defined
        batch.chosen_scores = 1.0 + 4.0 * torch.rand(b, generator=gen)
        batch.rejected_scores = 0.1 + 0.8 * torch.rand(b, n, generator=gen)
    return batch


#: Families whose losses share in-batch negatives (docs/losses.md, 'NAPO's in-batch sharing'): NAPO, its presets and appendix-B
#: variants, and its Table-3 ablations; their ``rho`` is the sharing ratio of K.  Other losses
#: (beta-DPO's ``rho`` is the fraction of pairs dropped, docs/losses.md) share nothing.
SHARING_FAMILIES = ("napo", "ablation")


@pytest.mark.parametrize("b", [1, 2, 3])
@pytest.mark.parametrize("key", losses.loss_keys())
def test_small_batches(key: str, b: int) -> None:
    out = losses.get_loss(key)(_batch(b, 2, key))
    assert out.per_example.shape == (b,)
    assert torch.isfinite(out.per_example).all()
    spec = losses.get_spec(key)
    if spec.family in SHARING_FAMILIES:
        assert out.metrics["K"] == losses.num_shared_neighbours(b, spec.hparams["rho"])
    else:
        # neighbours are found from seq_embeddings: a loss that does not declare them cannot share
        assert "seq_embeddings" not in spec.requires
        assert out.metrics.get("K", 0) == 0


def test_single_example_alpha_margin_is_base_margin() -> None:
    """b = 1: no standard deviation, so M* = 0 and the statistics stay untouched."""
    module = losses.get_loss("alpha_dpo")
    out = module(_batch(1, 1))
    assert float(out.metrics["margin"]) == pytest.approx(1.0)
    assert module.mu.item() == 0.0 and module.sigma.item() == 0.0


def test_pool_sizes_reported() -> None:
    out = losses.get_loss("napo")(_batch(16, 3))
    assert out.metrics["K"] == 10
    assert float(out.metrics["pool_size"]) == 33.0  # the paper's 3 + 10*3


def test_mask_shared_equal_to_positive() -> None:
    batch = _batch(4, 1)
    batch.chosen_item_ids = torch.tensor([10, 11, 12, 13])
    batch.rejected_item_ids = torch.tensor([[11], [20], [21], [22]])  # row 0's negative = y+ of 1
    masked = losses.get_loss("napo", rho=1.0, mask_shared_equal_to_positive=True)
    out = masked(batch)
    assert float(out.metrics["pool_size"]) == pytest.approx((4 + 4 + 4 + 4 - 1) / 4)
    with pytest.raises(UserError, match="chosen_item_ids, rejected_item_ids"):
        masked(_batch(4, 1))
