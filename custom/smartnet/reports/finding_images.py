"""Key images of the segmenter's findings and the page that shows them (``findings.html``).

A finding's key image is the axial slice where the lesion is largest (``Finding.largest_slice``), in the brain window
(0-80 HU), in radiological view (the patient's right on the viewer's left, anterior at the top, read from the image's
RAS affine), with the lesion outlined in red and any other lesion on that slice in yellow. Pixels are shown square (CT
slices have square in-plane pixels); small images are enlarged by a whole factor, nearest neighbour.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..findings import outline
from ..storage import atomic_write_text
from .html import STYLE, table

__all__ = ["BRAIN_WINDOW_HU", "KEY_IMAGE_DIR", "key_image", "radiological_view", "write_key_images",
           "write_findings_html"]

BRAIN_WINDOW_HU = (0.0, 80.0)
KEY_IMAGE_DIR = "findings"
_LESION_RGB = (255, 40, 40)
_OTHER_RGB = (255, 210, 0)
_MIN_SIDE_PX = 256


def radiological_view(plane: np.ndarray, affine: np.ndarray, z_axis: int) -> np.ndarray:
    """An axial plane ``(A0, A1)`` (the volume with array axis ``z_axis`` taken out) turned into radiological view.

    Args:
        plane: 2D array, its axes the volume's two in-plane array axes in their order.
        affine: the volume's 4 x 4 voxel-to-world affine (RAS, mm: +x the patient's right, +y anterior).
        z_axis: the volume's superior-inferior array axis (``smartnet.findings.axial_axis``).

    Returns:
        ``(rows, columns)``: rows run anterior to posterior, columns from the patient's right to left.
    """
    axes = [a for a in range(3) if a != z_axis]
    direction = np.asarray(affine, dtype=float)[:3, :3]
    column = int(np.argmax([abs(direction[0, a]) for a in axes]))  # the in-plane axis closest to left-right
    view = plane if column == 1 else plane.T
    column_axis, row_axis = axes[column], axes[1 - column]
    if direction[1, row_axis] > 0:  # index up = anterior: flip so that anterior is row 0
        view = view[::-1, :]
    if direction[0, column_axis] < 0:  # index up = towards the patient's left already: keep
        return np.ascontiguousarray(view)
    return np.ascontiguousarray(view[:, ::-1])  # index up = towards the right: flip, right on the viewer's left


def key_image(image_hu: np.ndarray, labels: np.ndarray, lesion: int, z: int, affine: np.ndarray, z_axis: int,
              window: Sequence[float] = BRAIN_WINDOW_HU) -> np.ndarray:
    """The key image of lesion ``lesion`` on slice ``z``: ``(H, W, 3)`` uint8 RGB.

    Args:
        image_hu: ``(X, Y, Z)`` CT in HU, the geometry of ``labels``.
        labels: ``(X, Y, Z)`` lesion label map (``smartnet.findings.label_lesions``).
        lesion: the label of the lesion to outline in red.
        z: slice index along ``z_axis``.
        affine, z_axis: the volume's geometry (see ``radiological_view``).
        window: ``[low, high]`` HU shown from black to white.
    """
    low, high = float(window[0]), float(window[1])
    gray = np.clip((np.take(image_hu, z, axis=z_axis).astype(np.float32) - low) / (high - low), 0.0, 1.0)
    plane_labels = np.take(labels, z, axis=z_axis)
    gray, plane_labels = (radiological_view(a, affine, z_axis) for a in (gray, plane_labels))
    scale = max(1, math.ceil(_MIN_SIDE_PX / max(gray.shape)))
    gray = np.kron(gray, np.ones((scale, scale), dtype=np.float32))
    plane_labels = np.kron(plane_labels, np.ones((scale, scale), dtype=plane_labels.dtype))
    rgb = np.repeat((gray * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)
    rgb[outline((plane_labels > 0) & (plane_labels != lesion))] = _OTHER_RGB
    rgb[outline(plane_labels == lesion)] = _LESION_RGB
    return rgb


def write_key_images(folder: Path, case_id: str, image_hu: np.ndarray, labels: np.ndarray,
                     findings: Sequence[Any], affine: np.ndarray, z_axis: int) -> dict[int, str]:
    """Write ``<folder>/findings/<case_id>_lesion<k>.png`` for every finding (``Finding`` objects with ``lesion`` and
    ``largest_slice``); returns ``{lesion: path relative to folder}``.

    Raises:
        ValueError: ``image_hu`` and ``labels`` of different shapes.
    """
    if np.shape(image_hu) != np.shape(labels):
        raise ValueError(f"the image {np.shape(image_hu)} and the lesion labels {np.shape(labels)} differ in shape")
    target = Path(folder) / KEY_IMAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for finding in findings:
        name = f"{case_id}_lesion{finding.lesion}.png"
        rgb = key_image(image_hu, labels, finding.lesion, finding.largest_slice, affine, z_axis)
        partial = target / f".{name}.partial.png"
        if not cv2.imwrite(str(partial), rgb[..., ::-1]):  # OpenCV writes BGR
            raise OSError(f"could not write {partial}")
        partial.replace(target / name)
        written[finding.lesion] = f"{KEY_IMAGE_DIR}/{name}"
    return written


_SHOWN = ["lesion", "volume_ml", "abc2_ml", "max_axial_diameter_mm", "side", "first_slice", "last_slice",
          "largest_slice"]


def write_findings_html(path: Path, cases: Mapping[str, Sequence[Mapping[str, Any]]],
                        images: Mapping[tuple[str, int], str], unlisted_ml: Mapping[str, float] | None = None,
                        classifier: Mapping[str, Mapping[str, Any]] | None = None, notes: Sequence[str] = ()) -> Path:
    """Write ``findings.html`` (atomically): per case its lesions' table and each lesion's key image.

    Args:
        path: the page to write.
        cases: ``{case_id: [finding dicts]}`` as in ``findings.json`` (every case, lesion-free ones with ``[]``).
        images: ``{(case_id, lesion): image path relative to the page}``; a lesion without one is listed without.
        unlisted_ml: ``{case_id: mL}`` of mask volume in parts too small to be listed (shown beside the case).
        classifier: ``{case_id: {"probability": p, "p_<subtype>": p, ...}}`` from the volume classifier, shown per
            case (scan-level probabilities).
        notes: paragraphs under the title.
    """
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>SMART-Net findings</title>",
             f"<style>{STYLE} .key {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }}</style>",
             "</head><body><h1>SMART-Net findings</h1>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    parts.append("<p>Key images: the axial slice where each lesion is largest, brain window (0-80 HU), radiological "
                 "view (the patient's right on the left of the image), the lesion outlined in red, other lesions on "
                 "the slice in yellow. Volumes in mL, diameters in mm, slices 0-based along the superior-inferior "
                 "axis of the input as stored.</p>")
    for case, findings in cases.items():
        total = sum(float(f["volume_ml"]) for f in findings)
        small = float((unlisted_ml or {}).get(case, 0.0))
        extra = f" (and {small:.2f} mL in smaller parts, not listed)" if small > 0 else ""
        parts.append(f"<h2>{html.escape(case)}: {len(findings)} lesion(s), {total:.2f} mL{extra}</h2>")
        scores = (classifier or {}).get(case)
        if scores:
            named = [f"haemorrhage {float(scores['probability']):.2f}"]
            named += [f"{k[2:]} {float(v):.2f}" for k, v in scores.items() if k.startswith("p_")]
            parts.append(f"<p>Volume classifier (this scan): {html.escape(', '.join(named))}</p>")
        if not findings:
            parts.append("<p>No lesion found.</p>")
            continue
        parts.append(table([{k: f[k] for k in _SHOWN if k in f} for f in findings]))
        for f in findings:
            image = images.get((case, int(f["lesion"])))
            if image is None:
                continue
            caption = (f"lesion {f['lesion']}: {float(f['volume_ml']):.2f} mL, {f['side']}, "
                       f"slices {f['first_slice']}-{f['last_slice']} (key slice {f['largest_slice']})")
            parts.append(f"<figure class='key'><img src='{html.escape(image)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return Path(path)
