"""Ignite handlers: per-epoch seeding, evaluation report figures, checkpoints with engine state, loss terms, evaluation reports, inference writers, transfer."""

from .epoch_seed import EpochSeeder
from .evaluation_report import SliceEvaluationReport
from .final_validation import FinalValidation
from .inference_writer import SliceProbabilityWriter, axial_axis
from .loss_terms import LossTermsLogger
from .operating_point import OperatingPointSelector
from .report_figures import ReportFigures, gradcam_maps
from .training_state import AtomicCheckpointSaver, TrainingStateLoader, TrainingStateSaver
from .volume_report import VolumeEvaluationReport, VolumePredictionWriter, voxel_volume_ml
from .transfer import REFERENCE_UNFREEZE_SCHEDULE, GradualUnfreezing, PretrainedWeightsLoader, scale_schedule

__all__ = [
    "AtomicCheckpointSaver",
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
