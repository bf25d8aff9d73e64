"""DICOM SEG output over the source series: geometry, frames and references read back with pydicom / highdicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from dicom_series import write_dicom_series
from smartnet.data.dicom_reader import read_dicom_series
from smartnet.dicom_seg import DicomSegError, write_dicom_seg


def _read_back(path: Path, sources: list):
    import highdicom as hd
    import pydicom

    seg = hd.seg.segread(str(path))
    raw = pydicom.dcmread(str(path))
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    return seg, raw, by_uid


def check_seg(path: Path, folder: Path, mask: np.ndarray) -> None:
    """The SEG at ``path`` references the series in ``folder`` frame by frame and holds ``mask`` (X, Y, Z as read)."""
    import pydicom

    sources = [pydicom.dcmread(str(p)) for p in sorted(folder.iterdir()) if p.is_file()]
    seg, raw, by_uid = _read_back(path, sources)
    first = sources[0]
    assert raw.Modality == "SEG" and raw.SegmentationType == "BINARY"
    assert raw.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert raw.StudyInstanceUID == first.StudyInstanceUID and raw.PatientID == first.PatientID
    assert raw.ReferencedSeriesSequence[0].SeriesInstanceUID == first.SeriesInstanceUID
    assert raw.SegmentSequence[0].SegmentLabel == "Haemorrhage"
    assert raw.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "50960005"  # SNOMED haemorrhage
    assert int(raw.NumberOfFrames) == len(sources)  # one frame per source image
    pixels = raw.pixel_array.reshape(int(raw.NumberOfFrames), int(raw.Rows), int(raw.Columns))
    # every frame lies on its source image (same position) and holds the mask's slice nearest to it: the mask is on
    # the grid the series was read onto (regular along the acquisition, first to last image)
    series = read_dicom_series(folder)
    lps = series.affine.copy()
    lps[:2] *= -1  # RAS -> LPS rows
    grid = (lps @ np.stack([np.zeros(mask.shape[2]), np.zeros(mask.shape[2]), np.arange(mask.shape[2]),
                            np.ones(mask.shape[2])]))[:3].T
    for frame, item in zip(pixels, raw.PerFrameFunctionalGroupsSequence):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = by_uid[uid]
        position = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        assert np.allclose(position, np.asarray(source.ImagePositionPatient, dtype=float), atol=1e-3)
        distance = np.linalg.norm(grid - position, axis=1)
        k = int(np.argmin(distance))
        assert distance[k] <= 0.5 * np.linalg.norm(lps[:3, 2]) + 1e-3
        assert np.array_equal(frame.astype(bool), mask[:, :, k].T > 0.5), k


def test_a_mask_over_a_synthetic_series_reads_back_frame_by_frame(tmp_path):
    image = np.full((24, 20, 6), -1000.0)
    image[4:20, 4:16, :] = 30.0
    affine = np.diag([0.8, 0.9, 5.0, 1.0])
    affine[:3, 3] = (-10.0, 20.0, 40.0)
    folder = tmp_path / "series"
    write_dicom_series(image, affine, folder)
    series = read_dicom_series(folder)
    mask = np.zeros(series.array.shape, dtype=np.uint8)
    mask[6:12, 8:11, 2:4] = 1  # a bleed on two slices, off-centre so that a transposed frame would not match
    path = write_dicom_seg(mask, folder, tmp_path / "out" / "case_seg.dcm", software_version="0.9.4")
    assert path.is_file() and not list(path.parent.glob(".*partial"))
    check_seg(path, folder, mask)
    with pytest.raises(DicomSegError, match="does not lie on the series"):
        write_dicom_seg(mask[:, :, :5], folder, tmp_path / "wrong.dcm")  # fewer slices than images
    with pytest.raises(DicomSegError, match="does not lie on the series"):
        write_dicom_seg(mask.transpose(1, 0, 2), folder, tmp_path / "wrong.dcm")  # rows and columns swapped


@pytest.mark.skipif(not (SHARED_DATA / "dicom").is_dir(), reason="needs the real GE head CT in ../shared/data")
def test_a_mask_over_the_real_gantry_tilted_series(tmp_path):
    folder = SHARED_DATA / "dicom"
    series = read_dicom_series(folder)
    assert series.tilt_degrees > 1.0 and series.resampled  # gantry tilt, uneven spacing resampled to a grid
    mask = np.zeros(series.array.shape, dtype=np.uint8)
    brain = (series.array > 20) & (series.array < 45)
    mask[brain & (np.arange(series.array.shape[2]) % 7 == 3)[None, None, :]] = 1  # lesion on a few slices
    path = write_dicom_seg(mask, folder, tmp_path / "ge_seg.dcm", software_version="0.9.4")
    check_seg(path, folder, mask)
