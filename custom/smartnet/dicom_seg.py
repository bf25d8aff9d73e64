"""A lesion mask as a DICOM Segmentation (SEG) object over the CT series it was computed from.

A hospital reads findings in its viewer (PACS, 3D Slicer, OHIF), which takes DICOM, not NIfTI. When the input of the
segmenter is a DICOM series, ``write_dicom_seg`` writes the mask as a binary SEG that references that series: one
segment "Haemorrhage" (SNOMED CT 50960005, category "Morphologically Abnormal Structure" 49755003, the property
"Intracranial hemorrhage" 1386000 as its anatomic context is the head), the source's study, patient and Frame of
Reference, and one frame per source slice that holds lesion, each referencing its source image (SOP Instance UID) and
carrying its plane position. Built with highdicom (the optional ``dicom`` extra: ``pip install smartnet-monai[dicom]``).

The mask is the segmenter's output in the geometry the series was read in (``smartnet.data.read_dicom_series``:
``(X, Y, Z)``, X along a row, Z the slices sorted along the slice normal), so slice ``k`` is the ``k``-th source
image in that order and its frame is ``mask[:, :, k].T`` (rows, columns). A gantry-tilted series keeps its tilt (the
frames lie on the source images). A series with uneven slice spacing, resampled onto a regular grid at its finest
repeated step when read, gets at each source image the nearest grid slice (at most half a grid step away: 2.1 mm for
the GE series with 4 and 7 mm steps); a mask that does not span the series is refused (``DicomSegError``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data.dicom_reader import is_dicom_file
from .errors import SmartNetError
from .storage import atomic_write_bytes

__all__ = ["DicomSegError", "dicom_seg_available", "write_dicom_seg"]

HAEMORRHAGE_LABEL = "Haemorrhage"
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


class DicomSegError(SmartNetError, ValueError):
    """A mask that cannot be written as a SEG over its series (no highdicom, other geometry, resampled slices)."""


def dicom_seg_available() -> bool:
    """Whether highdicom (the ``dicom`` extra) is installed."""
    try:
        import highdicom  # noqa: F401 - optional dependency, imported where used
    except ImportError:
        return False
    return True


def _source_images(folder: Path) -> list:
    import pydicom

    datasets = [pydicom.dcmread(str(p)) for p in sorted(folder.iterdir()) if is_dicom_file(p)]
    if not datasets:
        raise DicomSegError(f"{folder}: no DICOM images to reference")
    for ds in datasets:  # anonymised series often drop these type-2 attributes, which the SEG copies (empty is valid)
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    # the order read_dicom_series stacks the slices in: along the slice normal
    return sorted(datasets, key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal)))


def _grid_slices(sources: list, depth: int) -> np.ndarray:
    """The mask slice at each source image: the series as read is a regular grid along the acquisition from the
    first image to the last (``depth`` slices; more than the images when uneven spacing was resampled), so each
    image gets the grid slice nearest to its position."""
    positions = np.stack([np.asarray(ds.ImagePositionPatient, dtype=float) for ds in sources])
    offsets = np.linalg.norm(positions - positions[0], axis=1)
    step = offsets[-1] / (depth - 1) if depth > 1 else 1.0
    return np.clip(np.rint(offsets / step).astype(int), 0, depth - 1)


def write_dicom_seg(mask: np.ndarray, series_folder: str | os.PathLike, output_path: str | os.PathLike,
                    software_version: str = "", series_number: int = 901) -> Path:
    """Write ``mask`` (``(X, Y, Z)`` or ``(1, X, Y, Z)``, lesion > 0.5) as a binary DICOM SEG over the series in
    ``series_folder``; returns the written path (written atomically).

    Raises:
        DicomSegError: highdicom missing, a mask whose shape does not match the series (slices resampled, another
            series), or a series highdicom cannot reference.
    """
    if not dicom_seg_available():
        raise DicomSegError("DICOM SEG output needs highdicom: pip install highdicom (the 'dicom' extra)")
    import highdicom as hd
    from pydicom.filebase import DicomBytesIO
    from pydicom.sr.codedict import codes

    array = np.asarray(mask)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    folder = Path(series_folder)
    sources = _source_images(folder)
    rows, columns = int(sources[0].Rows), int(sources[0].Columns)
    if array.ndim != 3 or array.shape[:2] != (columns, rows) or array.shape[2] < len(sources):
        raise DicomSegError(f"{folder}: the mask {array.shape} does not lie on the series' {len(sources)} slices of "
                            f"{rows} x {columns}")
    frames = np.ascontiguousarray(np.transpose(array[:, :, _grid_slices(sources, array.shape[2])] > 0.5,
                                               (2, 1, 0)))  # (source slices, rows, columns)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="SMART-Net (smartnet_down_seg)", version=software_version or "unknown",
        family=codes.DCM.ArtificialIntelligence)
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=HAEMORRHAGE_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Hemorrhage,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Brain])
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment], series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="SMART-Net MONAI bundles",
            manufacturer_model_name="smartnet_down_seg", software_versions=software_version or "unknown",
            device_serial_number="none", series_description="SMART-Net haemorrhage segmentation",
            omit_empty_frames=False)
    except (ValueError, AttributeError, TypeError) as err:
        raise DicomSegError(f"{folder}: highdicom cannot build a SEG over this series: {err}") from None
    buffer = DicomBytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    path = Path(output_path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
