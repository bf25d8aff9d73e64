"""SMART-Net for intracranial haemorrhage in head CT, packaged for MONAI bundles.

The sub-packages hold what the bundle configs reference by dotted ``_target_`` paths and, in expressions, through the
config item ``smartnet`` (which first puts the bundle folder on ``sys.path``, so that the copy of this package that a
release archive carries inside the bundle is found without installing the project):

* ``networks``: ResNet slice encoder, decoders, heads and the upstream multi-task model;
* ``losses``: consistency, Dice+BCE and the multi-task sum;
* ``transforms``: HU windows, CLAHE, empty-slice crop, slice sampling, post-processing of the packed output;
* ``data``: datalists, dataset validation, synthetic demo data, the all-slices dataset;
* ``inferers``, ``precision``: inference speed switches (bf16, channels_last, torch.compile) and precision names;
* ``handlers``, ``metrics``, ``engines``, ``schedules``, ``checkpoints``: glue for MONAI / ignite workflows;
* ``settings``: checks of a bundle's settings before anything is built;
* ``vocabulary``: the names of heads, downstream tasks and report levels;
* ``errors``, ``guards``: the typed errors the library raises, and the one place (called by the configs and the
  command line) that turns them into a message and an exit code.
"""

import logging as _logging
import os as _os

__version__ = "0.9.8"

from . import checkpoints, data, engines, errors, handlers, inferers, losses, metrics, networks, operating_point, precision, schedules, settings, transforms  # noqa: E402,E501
from . import guards  # noqa: E402  (after the modules it guards)

__all__ = [
    "checkpoints",
    "data",
    "engines",
    "errors",
    "guards",
    "handlers",
    "inferers",
    "losses",
    "metrics",
    "networks",
    "operating_point",
    "precision",
    "schedules",
    "settings",
    "transforms",
    "log_runtime",
    "__version__",
]


def log_runtime() -> str:
    """Log (INFO) and return which copy of the package a bundle runs with: version and folder."""
    message = f"smartnet {__version__} from {_os.path.dirname(_os.path.abspath(__file__))}"
    _logging.getLogger("smartnet").info(message)
    return message
