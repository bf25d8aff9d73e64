"""Ablation studies: pretext combinations x consistency x initialisation x 3D operator x seeds, one command.

``smartnet study <file.yaml>`` expands a study file (``spec.py``) into arms, runs each through the bundles' own
``python -m monai.bundle run`` workflows (``runner.py``), skipping finished arms, and writes the comparison tables
and figures (``results.py``).
"""

from .results import METRICS, collect_runs, summarise, write_results
from .runner import bundle_commands, run_arm, run_study
from .spec import Arm, Study, StudyError, load_study

__all__ = ["Arm", "Study", "StudyError", "load_study", "bundle_commands", "run_arm", "run_study", "METRICS",
           "collect_runs", "summarise", "write_results"]
