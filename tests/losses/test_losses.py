"""Losses on hand-computed cases: consistency pooling, Dice+BCE, the weighted multi-task sum."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from smartnet.losses import ConsistencyLoss, DiceBCELoss, MultiTaskLoss, block_max_mean
from smartnet.networks import SmartNet2D


def test_block_max_mean_by_hand():
    prob = torch.zeros(1, 1, 4, 4)
    prob[0, 0, 0, 0] = 0.8  # tile (0, 0)
    prob[0, 0, 3, 3] = 0.4  # tile (1, 1)
    # 2x2 tiles: maxima 0.8, 0, 0, 0.4 -> mean 0.3
    assert torch.allclose(block_max_mean(prob, 2), torch.tensor([[0.3]]))


def test_block_max_mean_equals_reference_pooling_at_256():
    prob = torch.rand(3, 1, 256, 256)
    reference = F.avg_pool2d(F.max_pool2d(prob, 16, 16), 16, 16).flatten(1)
    assert torch.allclose(block_max_mean(prob, 16), reference)


@pytest.mark.parametrize("size, block", [(96, 32), (100, 16), (64, 16), (20, 32)])
def test_block_max_mean_is_one_number_for_any_size(size, block):
    out = block_max_mean(torch.rand(2, 1, size, size), block)
    assert out.shape == (2, 1)


def test_partial_tiles_count_as_tiles():
    prob = torch.zeros(1, 1, 3, 3)
    prob[0, 0, 2, 2] = 1.0  # with 2x2 tiles and ceil_mode the 3x3 map has 4 tiles, one of them holds the 1
    assert math.isclose(float(block_max_mean(prob, 2)), 0.25)


def test_consistency_value_by_hand():
    cls_logit = torch.tensor([[0.0]])  # p = 0.5
    seg_logits = torch.full((1, 1, 32, 32), -100.0)
    seg_logits[0, 0, 0, 0] = 100.0  # one of four 16x16 tiles -> q = 0.25
    assert math.isclose(float(ConsistencyLoss(16)(cls_logit, seg_logits)), 0.0625, rel_tol=1e-5)


def test_consistency_has_no_stop_gradient():
    cls_logit = torch.zeros(2, 1, requires_grad=True)
    seg_logits = torch.zeros(2, 1, 32, 32, requires_grad=True)
    seg_logits.data[:, :, :4, :4] = 3.0
    ConsistencyLoss(16)(cls_logit, seg_logits).backward()
    assert cls_logit.grad.abs().sum() > 0 and seg_logits.grad.abs().sum() > 0


def test_dice_bce_by_hand():
    logits = torch.tensor([[[[10.0, -10.0], [10.0, -10.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    p = torch.sigmoid(logits)
    dice = 1 - 2 * (p * target).sum() / (p.sum() + target.sum() + 1e-7)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(DiceBCELoss()(logits, target), dice + bce, atol=1e-6)


def test_dice_is_batch_dice():
    logits = torch.tensor([10.0, -10.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2).contiguous()
    target = torch.zeros(2, 1, 2, 2)
    target[0] = 1.0
    # reduced over batch and pixels together: the first image is perfect, the second empty -> Dice ~1
    loss = DiceBCELoss(lambda_bce=0.0)(logits, target)
    assert float(loss) < 1e-3


def test_masked_dice_leaves_padding_out_after_the_sigmoid():
    """Padded voxels (mask 0) count for nothing, whatever their logits: the Dice of the unpadded voxels alone
    (with masking before the sigmoid, padding would count as p = 0.5)."""
    logits = torch.tensor([[[[10.0, -10.0, 0.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    mask = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    masked = DiceBCELoss(lambda_bce=0.0)(logits, target, mask)
    unpadded = DiceBCELoss(lambda_bce=0.0)(logits[..., :2], target[..., :2])
    assert torch.allclose(masked, unpadded, atol=1e-5) and float(masked) < 1e-3


def test_lesion_slice_dice_weighs_each_lesion_slice_once():
    """A large lesion found and a thin one missed: the batch Dice is close to 1 - 2*100/(100+102), the per-lesion-slice
    Dice averages a perfect and a null slice (0.5); lesion-free slices (the third) add nothing but their BCE."""
    target = torch.zeros(3, 1, 10, 10)
    target[0] = 1.0
    target[1, 0, 0, :2] = 1.0
    logits = torch.full((3, 1, 10, 10), -20.0)
    logits[0] = 20.0
    batch = DiceBCELoss(lambda_bce=0.0)(logits, target)
    per_slice = DiceBCELoss(lambda_bce=0.0, dice_over="lesion_slice")(logits, target)
    assert float(batch) == pytest.approx(1 - 200 / 202, abs=1e-4)
    assert float(per_slice) == pytest.approx(0.5, abs=1e-4)
    padded = DiceBCELoss(lambda_bce=0.0, dice_over="lesion_slice")(logits, target, torch.ones_like(target))
    assert float(padded) == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(ValueError, match="dice_over"):
        DiceBCELoss(dice_over="volume")


def test_batch_and_lesion_slice_dice_is_the_mean_and_still_sees_false_voxels_of_lesion_free_slices():
    """Thin lesion missed (as above): the mean of the two terms. False voxels on a lesion-free slice of the batch:
    the per-lesion-slice Dice does not see them, the batch Dice and so the mean do."""
    target = torch.zeros(3, 1, 10, 10)
    target[0] = 1.0
    target[1, 0, 0, :2] = 1.0
    logits = torch.full((3, 1, 10, 10), -20.0)
    logits[0] = 20.0
    both = DiceBCELoss(lambda_bce=0.0, dice_over="batch_and_lesion_slice")(logits, target)
    assert float(both) == pytest.approx(((1 - 200 / 202) + 0.5) / 2, abs=1e-4)
    logits[2] = 20.0  # the whole lesion-free slice marked
    per_slice = DiceBCELoss(lambda_bce=0.0, dice_over="lesion_slice")(logits, target)
    assert float(per_slice) == pytest.approx(0.5, abs=1e-4)
    both = DiceBCELoss(lambda_bce=0.0, dice_over="batch_and_lesion_slice")(logits, target)
    assert float(both) == pytest.approx(((1 - 200 / 302) + 0.5) / 2, abs=1e-4)
    masked = DiceBCELoss(lambda_bce=0.0, dice_over="batch_and_lesion_slice")(logits, target, torch.ones_like(target))
    assert float(masked) == pytest.approx(float(both), abs=1e-4)
    empty = DiceBCELoss(dice_over="batch_and_lesion_slice")(logits, torch.zeros_like(target))
    assert torch.allclose(empty, F.binary_cross_entropy_with_logits(logits, torch.zeros_like(target)))


def test_lesion_slice_dice_is_zero_without_lesion():
    logits = torch.randn(2, 1, 8, 8)
    target = torch.zeros(2, 1, 8, 8)
    loss = DiceBCELoss(dice_over="lesion_slice")(logits, target)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, target))


def test_dice_term_is_zero_without_lesion():
    logits = torch.randn(2, 1, 8, 8)
    target = torch.zeros(2, 1, 8, 8)
    assert torch.allclose(DiceBCELoss()(logits, target), F.binary_cross_entropy_with_logits(logits, target))


def _target(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.cat([mask, image], dim=1)


def test_multitask_sum_matches_terms():
    torch.manual_seed(0)
    model = SmartNet2D(encoder="resnet18", stem_stride=2).eval()
    x = torch.rand(2, 1, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, 0, 10:20, 10:20] = 1
    with torch.no_grad():
        heads = model.forward_heads(x)
        pred = model(x)
    loss = MultiTaskLoss(block=model.output_stride, weights={"rec": 2.0})
    total = loss(pred, _target(mask, x))
    label = torch.tensor([[1.0], [0.0]])
    expected = {
        "cls": F.binary_cross_entropy_with_logits(heads["cls"], label),
        "seg": DiceBCELoss()(heads["seg"], mask),
        "rec": 2.0 * F.l1_loss(heads["rec"], x),
        "consistency": 0.5 * ConsistencyLoss(32)(heads["cls"], heads["seg"]),
    }
    assert set(loss.last_terms) == set(expected)
    for key, value in expected.items():
        assert math.isclose(loss.last_terms[key], float(value), rel_tol=1e-4), key
    assert math.isclose(float(total), float(sum(expected.values())), rel_tol=1e-4)


def test_consistency_switch_and_variants():
    x = torch.rand(1, 1, 64, 64)
    target = _target(torch.zeros(1, 1, 64, 64), x)
    off = MultiTaskLoss(consistency=False)
    pred = torch.zeros(1, 3, 64, 64)
    off(pred, target)
    assert "consistency" not in off.last_terms
    only_rec = MultiTaskLoss(tasks=["rec"], consistency=False)
    only_rec(torch.zeros(1, 1, 64, 64), target)
    assert set(only_rec.last_terms) == {"rec"}
    with pytest.raises(ValueError, match="consistency loss needs both"):
        MultiTaskLoss(tasks=["cls", "rec"], consistency=True)
