"""Ignite handler for downstream training: the upstream weights loaded into the network when training starts."""

from __future__ import annotations

import logging

from monai.utils import min_version, optional_import
from torch import nn

from ..networks.transfer import load_pretrained

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["PretrainedWeightsLoader"]

logger = logging.getLogger("smartnet")


class PretrainedWeightsLoader:
    """Load upstream weights into the network when training starts (``load_type`` "encoder" or "encoder+decoder").

    Attach it before a resume loader so a resumed run ends with the resumed weights. A checkpoint that is missing,
    unsafe or does not fit raises ``TransferError`` (listing the keys); the bundles' guarded run turns it into one
    message and exit status 2.
    """

    def __init__(self, network: nn.Module, load_path: str, load_type: str = "encoder") -> None:
        self.network = network
        self.load_path = load_path
        self.load_type = load_type

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        report = load_pretrained(self.network, self.load_path, self.load_type)
        logger.info(report.summary())
