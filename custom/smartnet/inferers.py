"""Inference speed switches for the bundles: numeric precision, channels_last and ``torch.compile``.

``AcceleratedInferer`` wraps a MONAI inferer (``SimpleInferer`` by default, ``SliceInferer`` for the upstream model)
and, around each call of the network:

* ``precision``: "fp32" (reference), "bf16" (``torch.autocast``; fast on CPUs with AVX512-BF16/AMX and on GPUs
  from Ampere on) or "fp16" (GPU only); "auto" picks bf16 where the device runs it natively, else fp16 on a GPU,
  else fp32. Outputs are returned as float32, so thresholds, metrics and written files see fp32 values.
* ``channels_last``: convolution weights stored channels-last once (2D NHWC, 3D NDHWC); faster with oneDNN on CPU
  and with tensor cores on GPU. Values are unchanged.
* ``compile``: ``torch.compile`` (inductor, weights frozen as constants) of the per-slice encoder of the volume
  models (of the whole network for others). The first call compiles (about 20 s for ResNet-50 on 2 CPU cores; it
  needs a C++ compiler on CPU); when compiling fails (a dynamo or inductor error, no C++ compiler), inference goes on
  uncompiled with a warning; any other error (out of memory, a shape error) propagates. Changed weights
  (a new checkpoint loaded into the same network) are noticed and compiled again.

The network itself is not replaced: checkpoints, MONAI Label and the training configs see the plain module.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Callable, Optional

import torch
from monai.inferers import Inferer, SimpleInferer

from .networks.memory_format import channels_last
from .precision import DTYPES, PRECISIONS, resolve_precision

__all__ = ["AcceleratedInferer"]

logger = logging.getLogger("smartnet.inferers")


def _weights_signature(model: torch.nn.Module) -> tuple:
    """Changes whenever any parameter or buffer is written in place (e.g. by ``load_state_dict``) or replaced."""
    return tuple((t.data_ptr(), t._version) for t in model.state_dict(keep_vars=True).values())


def _compile_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this could not be compiled" (dynamo and inductor failures, a missing or broken C++
    compiler); anything else, such as running out of memory or a shape error in the model, propagates."""
    import torch._dynamo.exc as dynamo_exc
    import torch._inductor.exc as inductor_exc

    return (dynamo_exc.TorchDynamoException, inductor_exc.CppCompileError, inductor_exc.InvalidCxxCompiler)


class _Compiled:
    """``torch.compile`` of ``fn`` with inductor freezing, rebuilt when the weights of ``owner`` change."""

    def __init__(self, owner: torch.nn.Module, fn: Callable) -> None:
        self.owner, self.fn = owner, fn
        self.signature: tuple = ()
        self.compiled: Optional[Callable] = None
        self.failed = False

    def refresh(self) -> None:
        """Drop the compiled graphs when the weights changed since they were compiled (once per inference call, not
        per slice chunk); the next call compiles again."""
        if self.compiled is not None and _weights_signature(self.owner) != self.signature:
            torch._dynamo.reset()  # frozen constants are stale: drop every compiled graph
            self.compiled = None

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.fn(*args)
        try:
            if self.compiled is None:
                self.compiled, self.signature = torch.compile(self.fn, dynamic=False), _weights_signature(self.owner)
            import torch._inductor.config as inductor_config

            with inductor_config.patch(freezing=True):
                return self.compiled(*args)
        except _compile_errors() as err:  # no C++ compiler, unsupported op...: correctness first, speed second
            logger.warning(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); running uncompiled")
            self.failed = True
            return self.fn(*args)


class AcceleratedInferer(Inferer):
    """Run ``inferer`` with the given precision, memory format and compilation (see the module docstring).

    Args:
        inferer: the MONAI inferer to wrap (``SimpleInferer()`` when ``None``).
        precision: "fp32", "bf16", "fp16" or "auto".
        channels_last: store convolution weights channels-last before the first call.
        compile: ``torch.compile`` the slice encoder (volume models) or the network, for calls without gradients.
    """

    def __init__(
        self,
        inferer: Optional[Inferer] = None,
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.precision, self.channels_last, self.compile = precision, bool(channels_last), bool(compile)
        self._prepared: Optional[int] = None
        self._compiled: Optional[_Compiled] = None

    def _prepare(self, network: torch.nn.Module) -> None:
        if self._prepared == id(network):
            return
        if self.channels_last:
            channels_last(network)
        self._compiled = None
        if self.compile:
            target = getattr(network, "encode_chunk", None)
            self._compiled = _Compiled(network, target if target is not None else network)
        self._prepared = id(network)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``inferer(inputs, network, *args, **kwargs)`` under the configured switches; floating outputs in fp32."""
        precision = resolve_precision(self.precision, inputs.device)
        call = network
        if isinstance(network, torch.nn.Module):
            self._prepare(network)
            use_compiled = self._compiled is not None and not network.training and not torch.is_grad_enabled()
            if use_compiled:
                self._compiled.refresh()
            if use_compiled and hasattr(network, "encode_chunk"):
                network.chunk_encoder = self._compiled  # used by _encode_in_chunks for this call only
            elif use_compiled:
                call = self._compiled
        dtype = DTYPES[precision]
        autocast = torch.autocast(inputs.device.type, dtype=dtype) if dtype is not None else nullcontext()
        try:
            with autocast:
                output = self.inferer(inputs, call, *args, **kwargs)
        finally:
            if isinstance(network, torch.nn.Module) and hasattr(network, "chunk_encoder"):
                network.chunk_encoder = None
        return _to_fp32(output)


def _to_fp32(output: Any) -> Any:
    """Floating tensors (also inside tuples, lists and dicts) as float32; everything else unchanged."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() and output.dtype != torch.float32 else output
    if isinstance(output, (list, tuple)):
        return type(output)(_to_fp32(o) for o in output)
    if isinstance(output, dict):
        return {k: _to_fp32(v) for k, v in output.items()}
    return output
