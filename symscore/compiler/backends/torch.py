"""The torch backend: vectorised ``torch`` code over (paths, lanes), a Python loop over steps; CPU or GPU.

The generated module (``templates/torch_kernel.py.j2``) holds one ``init``/``step``/``weight``/
``health`` function per block over a named-tuple state; ``compile=True`` wraps step and weight in
``torch.compile``. Increments come from the counter-based Philox stream (the module's
``philox_normals4_torch``: the same values as the numba kernel's), drawn on the device.
torch itself is imported on first use (SymPy's ``TorchPrinter`` module imports it too).
"""
from __future__ import annotations

import functools
from pathlib import Path

from ..._errors import SimulationInputError, SymscoreError
from ..kernel import Kernel, Paths
from ..printing import KernelPrinterMixin
from ..runtime import TimeGrid, check_dw, check_shape, check_x0
from .registry import Backend, register_backend

__all__ = ["torch_kernel_printer", "TorchKernel"]

DTYPES = ("float64", "float32")


@functools.cache
def torch_kernel_printer() -> type:
    """The torch printer class, built on first use: SymPy's TorchPrinter module imports torch."""
    from sympy.printing.pytorch import TorchPrinter

    class TorchKernelPrinter(KernelPrinterMixin, TorchPrinter):
        """Vectorised torch: every symbol is a tensor over paths (and lanes); Piecewise -> torch.where."""

        backend, function_module = "torch", "torch"
        _default_settings = {**TorchPrinter._default_settings, "strict": True}

        def _print_atan2(self, expr):
            # torch.atan2 takes tensors only: a constant argument becomes a tensor like the other one
            y, x = expr.args
            py, px = self._print(y), self._print(x)
            if y.is_number:
                py = f"torch.full_like({px}, {py})"
            elif x.is_number:
                px = f"torch.full_like({py}, {px})"
            return f"torch.atan2({py}, {px})"

    return TorchKernelPrinter


def check_options(dtype, device, use_compile) -> dict:
    import torch

    if dtype not in DTYPES:
        raise SymscoreError(f"dtype: the torch backend supports 'float64' or 'float32', got {dtype!r}")
    try:
        device = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise SymscoreError(f"device: expected 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SymscoreError(f"device: {device} was requested but torch.cuda.is_available() is False "
                            "(no GPU, or a CPU-only torch build)")
    if device.type not in ("cpu", "cuda"):
        raise SymscoreError(f"device: expected 'cpu' or 'cuda', got {device}")
    return {"dtype": dtype, "device": device, "use_compile": bool(use_compile)}


class TorchKernel(Kernel):
    """Kernel of the torch backend: vectorised over paths, a Python loop over steps; CPU or GPU."""

    backend = "torch"

    def __init__(self, sde, module, path, was_cached, *, dtype, device, use_compile):
        super().__init__(sde, module, path, was_cached)
        import torch

        self.torch, self.dtype, self.device, self.dtype_name = torch, getattr(torch, dtype), device, dtype
        self.blocks = module.BLOCKS
        if use_compile:
            self.blocks = [block._replace(step=torch.compile(block.step), weight=torch.compile(block.weight))
                           for block in module.BLOCKS]

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

    def _run(self, x0, grid: TimeGrid, dW, seed, first_path, rows, ridge, cond_max, out):
        out_x, out_target, fail_step, fail_kind, illcond, target_finite = out
        with self.torch.no_grad():
            self.module.simulate_kernel(x0, grid.dt, grid.n_steps, grid.record_steps.tolist(), dW, seed, first_path, ridge,
                                        cond_max, out_x[rows], out_target[rows], fail_step[rows], fail_kind[rows],
                                        illcond[rows], blocks=self.blocks)
            target_finite[rows] = self.torch.isfinite(out_target[rows]).all(dim=2)  # temporaries O(chunk)

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


BACKEND = register_backend(Backend(
    name="torch", description="CPU or CUDA, float64 or float32, vectorised over paths (torch)",
    template="torch_kernel.py.j2", printer=lambda: torch_kernel_printer()(), kernel=lambda: TorchKernel,
    check_options=check_options, source_file=Path(__file__),
))
