"""Ignite handlers, one module per role: evaluation (``evaluation_report``, ``report_figures``, ``operating_point``,
``final_validation``), predictions (``inference_writer``, ``dicom_seg_writer``), checkpoints (``training_state``),
weight transfer (``transfer``), the encoder schedule (``encoder_schedule``), and training bookkeeping (``epoch_seed``,
``loss_terms``); ``collector`` (the reset / collect / gather / finish skeleton of the collecting handlers),
``volume_rows`` and ``distributed`` are shared parts."""

from .dicom_seg_writer import DicomSegWriter
from .epoch_seed import EpochSeeder
from .evaluation_report import SliceEvaluationReport, VolumeEvaluationReport
from .final_validation import FinalValidation
from .inference_writer import SliceProbabilityWriter, VolumePredictionWriter, axial_axis
from .loss_terms import LossTermsLogger
from .operating_point import OperatingPointSelector
from .report_figures import ReportFigures, gradcam_maps
from .training_state import AtomicCheckpointSaver, TrainingStateLoader, TrainingStateSaver
from .volume_rows import voxel_volume_ml
from .encoder_schedule import REFERENCE_UNFREEZE_SCHEDULE, GradualUnfreezing, scale_schedule
from .transfer import PretrainedWeightsLoader

__all__ = [
    "AtomicCheckpointSaver",
    "DicomSegWriter",
    "EpochSeeder",
    "FinalValidation",
    "LossTermsLogger",
    "OperatingPointSelector",
    "ReportFigures",
    "gradcam_maps",
    "TrainingStateLoader",
    "TrainingStateSaver",
    "SliceEvaluationReport",
    "SliceProbabilityWriter",
    "axial_axis",
    "REFERENCE_UNFREEZE_SCHEDULE",
    "GradualUnfreezing",
    "PretrainedWeightsLoader",
    "scale_schedule",
    "VolumeEvaluationReport",
    "VolumePredictionWriter",
    "voxel_volume_ml",
]
