"""Haemorrhage subtype labels through the transform chains (``smartnet.vocabulary.SUBTYPES`` order).

* ``SubtypeCodesd`` (every bundle's loading part): the datalist's ``subtypes`` codes (``["ivh", "sdh"]``) become a
  ``(5,)`` float multi-hot tensor, so that batches of cases with different numbers of subtypes collate;
* ``SubtypeLabeld`` (the volume classifier's labels, with ``subtypes: true``): ``volume_label`` ``(1,)`` becomes
  ``(6,)``: "any" first, then the five subtypes;
* ``SplitSubtypesd`` (the classifier's postprocessing): a ``(6,)`` prediction or label keeps "any" under its key,
  ``(1,)`` as without subtypes, and the five subtypes go to ``<key>_subtypes``, so that every consumer of the "any"
  decision (AUROC, operating point, reports) reads the same shapes with or without the subtype head.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..data.subtypes import subtype_vector
from ..errors import DatalistError
from ..vocabulary import SUBTYPES

__all__ = ["SubtypeCodesd", "SubtypeLabeld", "SplitSubtypesd", "SUBTYPES_SUFFIX"]

SUBTYPES_SUFFIX = "_subtypes"
_N = len(SUBTYPES) - 1


class SubtypeCodesd(MapTransform):
    """Codes or names of ``keys`` (a list) -> ``(5,)`` float multi-hot; a tensor of 5 values is kept."""

    def __init__(self, keys: KeysCollection = "subtypes", allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, torch.Tensor) and value.numel() == _N:
                continue
            if isinstance(value, str):
                value = [v for v in value.replace(",", ";").split(";") if v.strip()]
            try:
                d[key] = torch.tensor(subtype_vector(list(value)), dtype=torch.float32)  # type: ignore[arg-type]
            except (TypeError, ValueError) as err:
                raise DatalistError(f"case {d.get('case_id', '?')}: {key} {value!r}: {err}") from None
        return d


class SubtypeLabeld(MapTransform):
    """``label_key`` ``(1,)`` ("any") -> ``(6,)`` "any" + the five subtypes of ``subtypes_key``.

    "Any" is the mask's (or the datalist's) volume label, or 1 when the case lists a subtype (a bleed too small to
    survive the minimum lesion size still counts). With ``enabled=False`` the transform does nothing, so the chain
    stays the same with or without the subtype head.

    Raises:
        DatalistError: when a case has no ``subtypes_key`` (the datalist carries no subtype labels).
    """

    def __init__(self, label_key: str = "volume_label", subtypes_key: str = "subtypes", enabled: bool = True) -> None:
        super().__init__([label_key])
        self.label_key = label_key
        self.subtypes_key = subtypes_key
        self.enabled = bool(enabled)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if not self.enabled:
            return d
        if self.subtypes_key not in d:
            raise DatalistError(
                f"case {d.get('case_id', '?')}: no subtype labels, which subtypes: true needs for every training "
                f"and validation case. Put a subtypes.csv (case_id,subtypes) beside the data and run "
                f"`smartnet datalist <dataset_dir>` again (docs/data.md)."
            )
        subtypes = torch.as_tensor(d[self.subtypes_key], dtype=torch.float32).reshape(_N)
        any_label = torch.as_tensor(d[self.label_key], dtype=torch.float32).reshape(-1)[:1]
        any_label = torch.maximum(any_label, subtypes.max().reshape(1))
        d[self.label_key] = torch.cat([any_label, subtypes])
        return d


class SplitSubtypesd(MapTransform):
    """A ``(6,)`` (or ``(1 + 5,)``-shaped first axis) entry of ``keys`` -> "any" ``(1,)`` under the key and the
    subtypes ``(5,)`` under ``<key>_subtypes``; a ``(1,)`` entry is left as it is."""

    def __init__(self, keys: KeysCollection = ("pred", "label"), allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, torch.Tensor) and value.shape[:1] == (len(SUBTYPES),):
                d[key] = value[:1]
                d[f"{key}{SUBTYPES_SUFFIX}"] = value[1:]
        return d
