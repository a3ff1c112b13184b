"""What the backends that run on torch tensors share: the dtype/device check and the kernel base.

The torch backend (vectorised torch code) and the triton backend (one fused ``@triton.jit``
kernel) both take and return tensors on one device: :class:`TensorKernel` gives them the array
namespace of :mod:`~symscore.compiler.host_torch` (the checks of ``x0`` and ``dW`` as tensors,
the allocation of the outputs) and returns :class:`Paths` of tensors or numpy arrays. Each
backend's subclass sets its ``launch``. torch is imported on first use.
"""
from __future__ import annotations

from ..._errors import SymscoreError
from ..kernel import Kernel, Paths

__all__ = ["TensorKernel", "check_dtype_device"]


def check_dtype_device(backend: str, dtype, device, dtypes=("float64", "float32")):
    """``(dtype, torch.device)`` checked for a tensor backend; errors name the argument."""
    import torch

    if dtype not in dtypes:
        raise SymscoreError(f"dtype: the {backend} backend supports {' or '.join(map(repr, dtypes))}, got {dtype!r}")
    try:
        device = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise SymscoreError(f"device: expected 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SymscoreError(f"device: {device} was requested but torch.cuda.is_available() is False "
                            "(no GPU, or a CPU-only torch build)")
    if device.type not in ("cpu", "cuda"):
        raise SymscoreError(f"device: expected 'cpu' or 'cuda', got {device}")
    return dtype, device


class TensorKernel(Kernel):
    """A kernel whose arrays are torch tensors of one dtype on one device (the namespace
    :class:`~symscore.compiler.host_torch.TorchArrays`)."""

    def __init__(self, sde, module, path, was_cached, *, dtype, device):
        super().__init__(sde, module, path, was_cached)
        import torch

        from ..host_torch import TorchArrays

        self.torch, self.dtype, self.device = torch, getattr(torch, dtype), device
        self.arrays = TorchArrays(self.dtype, device)

    def _paths(self, times, out_x, out_target, failed, as_numpy):
        if as_numpy:
            return Paths(t=times, x=out_x.cpu().numpy(), target=out_target.cpu().numpy(), failed=failed)
        return Paths(t=self.torch.as_tensor(times, dtype=self.dtype, device=self.device), x=out_x, target=out_target,
                     failed=failed)
