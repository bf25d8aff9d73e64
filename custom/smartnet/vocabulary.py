"""The words the package uses for its heads, bundles and report levels: one definition each.

* ``HEADS``: the upstream's pretext heads, the ``tasks`` of ``SmartNet2D`` (slice classification, lesion
  segmentation, image reconstruction);
* ``DOWNSTREAM_TASKS``: the downstream bundles' tasks, the ``task`` of the volume handlers and of a study's
  downstream arms (volume classifier, volume segmenter);
* ``MODEL_LEVELS``: which model an evaluation report describes (the upstream's slices, the volume classifier, the
  volume segmenter);
* ``INITS``: where a downstream model's weights start (the one ``init`` setting of the downstream bundles):
  ``upstream`` the upstream model's encoder (and the slice head a volume model keeps), ``upstream_with_decoder``
  also its segmentation decoder (and the seg head / peak a volume model keeps), ``imagenet`` a torchvision ImageNet
  ResNet file, ``scratch`` random weights, ``checkpoint`` a whole downstream model (``finetune_model_path``;
  model-zoo's ``finetune: true`` selects it);
* ``SUBTYPES``: the outputs of the volume classifier's optional subtype head, in the RSNA 2019 challenge's order
  ("any" haemorrhage, then the five kinds), with ``SUBTYPE_CODES`` the short codes a datalist carries per case
  (``"subtypes": ["sdh", "ivh"]``) and ``SUBTYPE_WEIGHTS`` the challenge's log-loss weights ("any" counts double).

This module imports nothing, so any module may use it.
"""

from __future__ import annotations

__all__ = ["HEADS", "DOWNSTREAM_TASKS", "MODEL_LEVELS", "INITS", "SUBTYPES", "SUBTYPE_CODES", "SUBTYPE_WEIGHTS"]

HEADS: tuple[str, ...] = ("cls", "seg", "rec")
DOWNSTREAM_TASKS: tuple[str, ...] = ("cls", "seg")
MODEL_LEVELS: tuple[str, ...] = ("slice", "volume_cls", "volume_seg")
INITS: tuple[str, ...] = ("upstream", "upstream_with_decoder", "imagenet", "scratch", "checkpoint")
SUBTYPES: tuple[str, ...] = ("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
SUBTYPE_CODES: dict[str, str] = {
    "edh": "epidural",
    "iph": "intraparenchymal",
    "ivh": "intraventricular",
    "sah": "subarachnoid",
    "sdh": "subdural",
}
SUBTYPE_WEIGHTS: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)
