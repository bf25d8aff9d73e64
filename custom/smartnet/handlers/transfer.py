"""Ignite handler for downstream training: the starting weights (``init``) loaded into the network when training
starts."""

from __future__ import annotations

import logging

from monai.utils import min_version, optional_import
from torch import nn

from ..networks.imagenet import load_imagenet_resnet
from ..networks.transfer import load_pretrained
from ..vocabulary import INITS

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["PretrainedWeightsLoader"]

logger = logging.getLogger("smartnet")


class PretrainedWeightsLoader:
    """Load a downstream model's starting weights when training starts, as ``init`` says.

    Args:
        network: the volume model.
        init: one of ``smartnet.vocabulary.INITS``: ``upstream`` / ``upstream_with_decoder`` copy
            ``upstream_parts`` of the upstream checkpoint at ``upstream_path``; ``imagenet`` the torchvision ResNet
            file at ``imagenet_path`` into the encoder; ``scratch`` keeps the random weights; ``checkpoint`` is
            MONAI's ``CheckpointLoader`` (``finetune_model_path``), so nothing here.
        upstream_path: the upstream bundle's ``model.pt``.
        imagenet_path: a torchvision ImageNet ResNet state-dict file.
        upstream_parts: a ``smartnet.networks.LOAD_TYPES`` name, e.g. ``encoder+decoder``.

    Attach it before a resume loader so a resumed run ends with the resumed weights. A checkpoint that is missing,
    unsafe or does not fit raises ``TransferError`` (listing the keys); the bundles' guarded run turns it into one
    message and exit status 2.
    """

    def __init__(self, network: nn.Module, init: str, upstream_path: str, imagenet_path: str | None = None,
                 upstream_parts: str = "encoder") -> None:
        if init not in INITS:
            raise ValueError(f"init {init!r} is not one of {list(INITS)}")
        self.network = network
        self.init = init
        self.upstream_path = upstream_path
        self.imagenet_path = imagenet_path
        self.upstream_parts = upstream_parts

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if self.init in ("upstream", "upstream_with_decoder"):
            report = load_pretrained(self.network, self.upstream_path, self.upstream_parts)
        elif self.init == "imagenet":
            report = load_imagenet_resnet(self.network, self.imagenet_path)
        else:
            logger.info("init %s: %s", self.init, "random weights" if self.init == "scratch"
                        else "the whole model from finetune_model_path")
            return
        logger.info("init %s: %s", self.init, report.summary())
