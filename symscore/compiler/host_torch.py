"""The array namespace of the backends that run on torch tensors (torch, triton).

:class:`TorchArrays` is :class:`~symscore.compiler.host.NumpyArrays` for tensors of one dtype on
one device: the same checks (a tensor is checked where it lies, a numpy array by the numpy rules
and then moved), the same outputs. Rendered verbatim into torch and triton modules after
:mod:`~symscore.compiler.host`; the package's tensor kernels hold one.
"""
from __future__ import annotations

import torch

from .._errors import SimulationInputError
from .host import Outputs
from .runtime import check_dw, check_shape, check_x0

__all__ = ["TorchArrays"]


class TorchArrays:
    """Tensors of ``dtype`` (float64 or float32) on ``device``.

    An emitted module takes its namespace from its input with :meth:`for_input`; a package kernel
    has its own from ``compile(dtype=..., device=...)``.
    """

    def __init__(self, dtype, device):
        self.dtype, self.device = dtype, torch.device(device)
        self.dtype_name = "float32" if dtype == torch.float32 else "float64"

    @classmethod
    def for_input(cls, x0, device=None, default_device="cpu") -> "TorchArrays":
        """The namespace of an emitted module's call: a float64 or float32 ``x0`` tensor sets the dtype
        and, with ``device`` None, the device; otherwise float64 on ``default_device``."""
        is_tensor = isinstance(x0, torch.Tensor)
        dtype = x0.dtype if is_tensor and x0.dtype in (torch.float32, torch.float64) else torch.float64
        if device is None:
            device = x0.device if is_tensor else default_device
        return cls(dtype, device)

    def _checked_tensor(self, name, value, shape_ok, expected, finite):
        """A tensor argument checked by the rules of runtime.check_x0/check_dw, on this device."""
        if not value.dtype.is_floating_point:
            raise SimulationInputError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
        check_shape(name, value.shape, expected, shape_ok)
        finite_rows = torch.isfinite(value).reshape(value.shape[0], -1).all(dim=1)
        if not bool(finite_rows.all()):
            if name == "x0":  # the message of the numpy rule (check_x0): which rows
                rows = torch.nonzero(~finite_rows).flatten()[:5].tolist()
                raise SimulationInputError(f"x0: expected finite values, row(s) {rows} contain NaN or inf")
            raise SimulationInputError(f"{name}: expected finite {finite}, found NaN or inf")
        return value.to(self.device, self.dtype)

    def check_x0(self, x0, m: int):
        if isinstance(x0, torch.Tensor):
            return self._checked_tensor("x0", x0, x0.ndim == 2 and x0.shape[1] == m and x0.shape[0] >= 1,
                                        f"shape (n, {m}) with n >= 1 (one initial point per path)", "values")
        return torch.as_tensor(check_x0(x0, m), dtype=self.dtype, device=self.device)

    def check_dw(self, dW, shape):
        if isinstance(dW, torch.Tensor):
            return self._checked_tensor("dW", dW, tuple(dW.shape) == tuple(shape),
                                        f"shape (n, n_steps, d) = {tuple(shape)}", "Brownian increments")
        return torch.as_tensor(check_dw(dW, shape), dtype=self.dtype, device=self.device)

    def path_index(self, first: int, n: int):
        return torch.arange(first, first + n, dtype=torch.long, device=self.device)

    def allocate(self, n: int, n_records: int, m: int, n_steps: int) -> Outputs:
        device = self.device
        x = torch.empty((n, n_records, m), dtype=self.dtype, device=device)
        return Outputs(x, torch.empty_like(x), torch.full((n,), n_steps + 1, dtype=torch.long, device=device),
                       torch.zeros((n,), dtype=torch.long, device=device),
                       torch.zeros((n, n_records), dtype=torch.bool, device=device),
                       torch.zeros((n, n_records), dtype=torch.bool, device=device))

    @staticmethod
    def rows_finite(target):
        return torch.isfinite(target).all(dim=2)

    @staticmethod
    def where(mask):
        return torch.nonzero(mask).flatten()

    @staticmethod
    def host(array):
        return array.cpu().numpy()

    def index(self, host_index):
        return torch.as_tensor(host_index, device=self.device)
