"""The words the package uses for its heads, bundles and report levels: one definition each.

* ``HEADS``: the upstream's pretext heads, the ``tasks`` of ``SmartNet2D`` (slice classification, lesion
  segmentation, image reconstruction);
* ``DOWNSTREAM_TASKS``: the downstream bundles' tasks, the ``task`` of the volume handlers and of a study's
  downstream arms (volume classifier, volume segmenter);
* ``MODEL_LEVELS``: which model an evaluation report describes (the upstream's slices, the volume classifier, the
  volume segmenter).

This module imports nothing, so any module may use it.
"""

from __future__ import annotations

__all__ = ["HEADS", "DOWNSTREAM_TASKS", "MODEL_LEVELS"]

HEADS: tuple[str, ...] = ("cls", "seg", "rec")
DOWNSTREAM_TASKS: tuple[str, ...] = ("cls", "seg")
MODEL_LEVELS: tuple[str, ...] = ("slice", "volume_cls", "volume_seg")
