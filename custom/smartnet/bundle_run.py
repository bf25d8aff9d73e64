"""The three bundles by name and the ``python -m monai.bundle run`` command line that runs one of them.

One place for what the CLI (``smartnet demo``, ``real-check``, ``operating-point``), the study runner and the tests
need: which folder holds which stage, where this checkout keeps them, and the command a user would type.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

__all__ = [
    "STAGE_BUNDLES", "BUNDLE_NAMES", "BUNDLES_ENV", "REPO_BUNDLES", "bundles_dir_or_default", "bundle_run_command",
]

# stage -> bundle folder name, in the chain's order
STAGE_BUNDLES: dict[str, str] = {
    "upstream": "smartnet_upstream", "cls": "smartnet_down_cls", "seg": "smartnet_down_seg"
}
BUNDLE_NAMES: tuple[str, ...] = tuple(STAGE_BUNDLES.values())
# the bundles of this checkout (an editable install); a release archive or another folder is passed explicitly
REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
BUNDLES_ENV = "SMARTNET_BUNDLES"  # names the folder holding the bundles for every command not given --bundles_dir


def bundles_dir_or_default(bundles_dir: str | os.PathLike | None) -> Path:
    """The folder holding the bundles: ``bundles_dir`` when given, else ``$SMARTNET_BUNDLES``, else this checkout's
    ``bundles/`` (an editable install; a package installed without the repository has none, and the commands that
    need the bundles then say so and ask for ``--bundles_dir``)."""
    chosen = bundles_dir or os.environ.get(BUNDLES_ENV)
    return Path(chosen).expanduser() if chosen else REPO_BUNDLES


def bundle_run_command(
    bundle: Path,
    configs: Sequence[str],
    overrides: Mapping[str, object],
    bundle_root: Path | None = None,
    launcher: Sequence[str] = (),
) -> list[str]:
    """``python [launcher] -m monai.bundle run`` for ``configs`` (file names in ``bundle/configs``, merged in order)
    with the bundle's metadata and logging config, ``--bundle_root`` (default: the bundle itself) and one
    ``--<id> <value>`` per override (values as ``str``).

    ``launcher`` goes between the interpreter and ``-m monai.bundle``, e.g. ``["-m", "torch.distributed.run",
    "--nproc_per_node=2"]``.
    """
    configs_dir = Path(bundle) / "configs"
    files = "[" + ",".join(f"'{configs_dir / c}'" for c in configs) + "]"
    cmd = [sys.executable, *launcher, "-m", "monai.bundle", "run", "--config_file", files,
           "--meta_file", str(configs_dir / "metadata.json"), "--logging_file", str(configs_dir / "logging.conf"),
           "--bundle_root", str(bundle_root or bundle)]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd
