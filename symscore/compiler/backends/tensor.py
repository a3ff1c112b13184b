"""What the backends that run on torch tensors share: option checks and the array adapter.

The torch backend (vectorised torch code) and the triton backend (one fused ``@triton.jit``
kernel) both take and return tensors on one device: :class:`TensorKernel` holds the checks of
``x0`` and ``dW`` as tensors, the allocation of the outputs and the conversions to numpy. Each
backend's subclass adds its ``_run``. torch is imported on first use.
"""
from __future__ import annotations

from ..._errors import SimulationInputError, SymscoreError
from ..kernel import Kernel, Paths
from ..runtime import check_dw, check_shape, check_x0

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
    """A kernel whose arrays are torch tensors of one dtype on one device."""

    def __init__(self, sde, module, path, was_cached, *, dtype, device):
        super().__init__(sde, module, path, was_cached)
        import torch

        self.torch, self.dtype, self.device, self.dtype_name = torch, getattr(torch, dtype), device, dtype

    def _check_tensor(self, name, value, shape_ok, expected, finite):
        """A tensor argument checked by the rules of runtime.check_x0/check_dw, on the kernel's device."""
        if not value.dtype.is_floating_point:
            raise SimulationInputError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
        check_shape(name, value.shape, expected, shape_ok)
        if not bool(self.torch.isfinite(value).all()):
            raise SimulationInputError(f"{name}: expected finite {finite}, found NaN or inf")
        return value.to(self.device, self.dtype)

    def _check_x0(self, x0, m):
        if isinstance(x0, self.torch.Tensor):
            return self._check_tensor("x0", x0, x0.ndim == 2 and x0.shape[1] == m and x0.shape[0] >= 1,
                                      f"shape (n, {m}) with n >= 1 (one initial point per path)", "values")
        return self.torch.as_tensor(check_x0(x0, m), dtype=self.dtype, device=self.device)

    def _check_dw(self, dW, shape):
        if isinstance(dW, self.torch.Tensor):
            return self._check_tensor("dW", dW, tuple(dW.shape) == tuple(shape), f"shape (n, n_steps, d) = {tuple(shape)}",
                                      "Brownian increments")
        return self.torch.as_tensor(check_dw(dW, shape), dtype=self.dtype, device=self.device)

    def _allocate(self, n, K, m, n_steps):
        torch, device = self.torch, self.device
        out_x = torch.empty((n, K, m), dtype=self.dtype, device=device)
        return (out_x, torch.empty_like(out_x), torch.full((n,), n_steps + 1, dtype=torch.long, device=device),
                torch.zeros((n,), dtype=torch.long, device=device), torch.zeros((n, K), dtype=torch.bool, device=device),
                torch.zeros((n, K), dtype=torch.bool, device=device))

    @staticmethod
    def _host(array):
        return array.cpu().numpy() if hasattr(array, "cpu") else Kernel._host(array)

    def _index(self, mask_or_rows):
        return self.torch.as_tensor(mask_or_rows, device=self.device)

    def _paths(self, times, out_x, out_target, failed, as_numpy):
        if as_numpy:
            return Paths(t=times, x=out_x.cpu().numpy(), target=out_target.cpu().numpy(), failed=failed)
        return Paths(t=self.torch.as_tensor(times, dtype=self.dtype, device=self.device), x=out_x, target=out_target,
                     failed=failed)
