"""SMART-Net for intracranial haemorrhage in head CT, packaged for MONAI bundles.

The sub-packages hold what the bundle configs reference by dotted ``_target_`` paths (``"$import smartnet"`` in a
config makes all of them available):

* ``networks``: ResNet slice encoder, decoders, heads and the upstream multi-task model;
* ``losses``: consistency, Dice+BCE and the multi-task sum;
* ``transforms``: HU windows, CLAHE, empty-slice crop, slice sampling, post-processing of the packed output;
* ``data``: datalists, dataset validation, synthetic demo data, the all-slices dataset;
* ``handlers``, ``metrics``, ``engines``, ``schedules``, ``checkpoints``: glue for MONAI / ignite workflows.
"""

__version__ = "0.1.0"

from . import checkpoints, data, engines, handlers, losses, metrics, networks, schedules, transforms  # noqa: E402

__all__ = [
    "checkpoints",
    "data",
    "engines",
    "handlers",
    "losses",
    "metrics",
    "networks",
    "schedules",
    "transforms",
    "__version__",
]
