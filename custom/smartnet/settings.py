"""Checks of a bundle's settings before anything is built: every setting that cannot work, named at once.

Without them a bad setting fails deep inside instantiation with a traceback (an ``image_size`` that is not a
multiple of the output stride makes the reconstruction decoder return another size), or, worse, runs: a volume
classifier that keeps the upstream's seg head without its decoder reads a random decoder. The bundles call
``smartnet.guards.check_settings`` first in ``initialize``; the library raises ``SettingsError``.
"""

from __future__ import annotations

from typing import Any, Optional

from .errors import SettingsError
from .losses.segmentation import DICE_REDUCTIONS
from .weight_record import WEIGHT_SETTINGS, SettingsRecord, settings_mismatches
from .networks.encoders import ENCODERS
from .networks.multitask_2d import VARIANTS
from .networks.volume_operators import OPERATORS
from .vocabulary import DOWNSTREAM_TASKS, INITS

__all__ = [
    "SettingsError",
    "NEGATIVE_SAMPLING",
    "WEIGHT_SETTINGS",
    "SettingsRecord",
    "check_settings",
    "settings_mismatches",
]


NEGATIVE_SAMPLING = ("uniform", "tissue")


def _choice(problems: list[str], name: str, value: Any, choices) -> None:
    if value is not None and value not in choices:
        problems.append(f"{name} {value!r} is not one of {list(choices)}")


def check_settings(
    encoder: Optional[str] = None,
    stem_stride: Optional[int] = None,
    image_size: Optional[int] = None,
    variant: Optional[str] = None,
    consistency: Optional[bool] = None,
    negative_sampling: Optional[str] = None,
    operator: Optional[str] = None,
    task: Optional[str] = None,
    init: Optional[str] = None,
    finetune: Optional[bool] = None,
    resume: Optional[bool] = None,
    slice_head: Optional[bool] = None,
    seg_evidence: Optional[bool] = None,
    seg_peak: Optional[bool] = None,
    seg_prior: Optional[float] = None,
    seg_dice: Optional[str] = None,
) -> None:
    """Raise ``SettingsError`` listing every problem of the given settings (``None`` = not a setting of this bundle).

    Args:
        encoder: ``ENCODERS`` name; stem_stride: 1 (reference) or 2; image_size: in-plane pixels, a positive multiple
            of the output stride (16 x ``stem_stride``).
        variant, consistency, negative_sampling: upstream settings (consistency needs the CLS and SEG heads).
        operator: the volume classifier's 3D operator.
        task: the downstream bundle's task (``DOWNSTREAM_TASKS``): a segmenter's slice head sits on the seg decoder.
        init, finetune, resume: downstream initialisation, one of ``INITS``; ``finetune`` true is model-zoo's
            spelling of ``init`` ``checkpoint`` (the bundles derive one from the other; both set otherwise is refused).
        slice_head: keep the upstream's slice head in a volume model (needs ``init`` from the upstream, or
            ``checkpoint``; a segmenter's needs ``upstream_with_decoder``).
        seg_evidence: the classifier's segmentation evidence from the upstream's seg decoder and head (needs
            ``init`` ``upstream_with_decoder``, or ``checkpoint``).
        seg_prior: upstream: the SEG head's starting lesion probability, in (0, 1) (needs a SEG head).
        seg_dice: upstream: how the SEG loss's Dice is reduced, one of ``DICE_REDUCTIONS``.
        seg_peak: upstream: the slice logit adds the SEG head's peak (needs the CLS and SEG heads); volume
            classifier: keep that slice logit (needs ``slice_head`` and ``init`` ``upstream_with_decoder``).
    """
    problems: list[str] = []
    _choice(problems, "encoder", encoder, ENCODERS)
    _choice(problems, "stem_stride", stem_stride, (1, 2))
    if image_size is not None:
        stride = 16 * (stem_stride if stem_stride in (1, 2) else 1)
        if not isinstance(image_size, int) or image_size <= 0 or image_size % stride:
            problems.append(f"image_size {image_size!r} must be a positive multiple of the output stride {stride} "
                            f"(stem_stride {stem_stride}), e.g. {max(stride, round(int(image_size) / stride) * stride)}"
                            if isinstance(image_size, (int, float)) else f"image_size {image_size!r} is not a number")
    _choice(problems, "variant", variant, VARIANTS)
    if consistency and variant in VARIANTS and not {"cls", "seg"} <= set(VARIANTS[variant]):
        problems.append(f"consistency ties the CLS and SEG heads, but variant {variant!r} has "
                        f"{list(VARIANTS[variant])}, set consistency false")
    if seg_peak and variant in VARIANTS and not {"cls", "seg"} <= set(VARIANTS[variant]):
        problems.append(f"seg_peak adds the SEG head's peak to the CLS logit, but variant {variant!r} has "
                        f"{list(VARIANTS[variant])}, set seg_peak false")
    if seg_prior is not None:
        if isinstance(seg_prior, bool) or not isinstance(seg_prior, (int, float)) or not 0.0 < seg_prior < 1.0:
            problems.append(f"seg_prior {seg_prior!r} must be a lesion probability in (0, 1), e.g. 0.01, or null")
        elif variant in VARIANTS and "seg" not in VARIANTS[variant]:
            problems.append(f"seg_prior sets the SEG head's starting bias, but variant {variant!r} has "
                            f"{list(VARIANTS[variant])}, set seg_prior null")
    _choice(problems, "negative_sampling", negative_sampling, NEGATIVE_SAMPLING)
    _choice(problems, "seg_dice", seg_dice, DICE_REDUCTIONS)
    _choice(problems, "operator", operator, OPERATORS)
    _choice(problems, "task", task, DOWNSTREAM_TASKS)
    _choice(problems, "init", init, INITS)
    if finetune and init is not None and init != "checkpoint":
        problems.append(f"finetune true starts from finetune_model_path (init 'checkpoint'), but init is {init!r}; "
                        "set one of them only")
    from_upstream = ("upstream", "upstream_with_decoder", "checkpoint")
    with_decoder = ("upstream_with_decoder", "checkpoint")
    if slice_head and init is not None and init not in from_upstream:
        problems.append(f"slice_head keeps the upstream model's slice head, but init is {init!r}; set slice_head "
                        "false, or init 'upstream' / 'upstream_with_decoder'")
    if slice_head and task == "seg" and init is not None and init not in with_decoder:
        problems.append(f"a segmenter's slice_head is the upstream's seg head over its seg decoder, but init is "
                        f"{init!r}; set init 'upstream_with_decoder', or slice_head false")
    if seg_evidence and init is not None and init not in with_decoder:
        problems.append(f"seg_evidence uses the upstream model's segmentation decoder and head, but init is {init!r}; "
                        "set init 'upstream_with_decoder', or seg_evidence false")
    if seg_peak and slice_head is False:
        problems.append("seg_peak is part of the upstream's slice logit, which a volume classifier keeps with "
                        "slice_head; set slice_head true, or seg_peak false")
    if seg_peak and init is not None and init not in with_decoder:
        problems.append(f"seg_peak comes from an upstream model trained with seg_peak (its seg decoder and head), but "
                        f"init is {init!r}; set init 'upstream_with_decoder', or seg_peak false")
    if problems:
        raise SettingsError("; ".join(problems))
