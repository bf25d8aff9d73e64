"""Ignite handlers: evaluation reports and inference writers."""

from .evaluation_report import SliceEvaluationReport, binary_scores
from .loss_terms import LossTermsLogger
from .training_state import TrainingStateLoader, TrainingStateSaver
from .inference_writer import SliceProbabilityWriter, axial_axis

__all__ = ["LossTermsLogger", "TrainingStateLoader", "TrainingStateSaver", "SliceEvaluationReport", "binary_scores", "SliceProbabilityWriter", "axial_axis"]
