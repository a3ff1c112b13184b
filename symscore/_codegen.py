"""Code generation: render the kernel IR into a module source through a Jinja2 template.

The template (``templates/<backend>_kernel.py.j2``) holds the loops; the printer of the backend
prints every IR expression. The same SDE always gives byte-identical source.
"""
from __future__ import annotations

import importlib.resources
from functools import cache

import jinja2
import sympy as sp

from ._ir import KernelIR
from ._printing import make_printer, print_expr
from ._version import __version__

__all__ = ["render_source", "header_lines", "template_text"]


@cache
def _environment() -> jinja2.Environment:
    folder = importlib.resources.files("symscore.templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)), keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )


@cache
def template_text(backend: str) -> str:
    """The template of ``backend`` and the templates it includes (their text is part of the cache key
    of generated modules; read once)."""
    names = (f"{backend}_kernel.py.j2", "input_checks.py.j2")
    return "\n".join(_environment().loader.get_source(_environment(), name)[0] for name in names)


def header_lines(sde, structure: str) -> list[str]:
    """The SDE in readable form, for the module docstring."""
    lines = [f"State {', '.join(map(str, sde.state))}; time {sde.time}; m = {sde.m}, d = {sde.d}; "
             f"structure: {structure}; T = {sde.T}"]
    if sde.params:
        lines.append("Parameters: " + ", ".join(f"{k} = {float(v):g}" for k, v in sorted(sde.params.items(), key=str)))
    lines += [f"  b_{i} = {e}" for i, e in enumerate(sde.drift)]
    lines += [f"  sigma[{i}, {j}] = {e}" for (i, j), e in sorted(sde.diffusion.todok().items())]
    return lines


def _printed_block(block, printer):
    def show(expr):
        return print_expr(printer, sp.sympify(expr))

    def line(a):
        return {"lhs": str(a.lhs), "rhs": show(a.rhs), "comment": _one_line(a.comment)}

    return {
        "description": block.description,
        "lanes": [list(lane) for lane in block.lanes],
        "noise_lanes": [list(lane) for lane in block.noise_lanes],
        "width": block.width,
        "n_noise": block.n_noise,
        "state": [(str(s), show(v)) for s, v in block.state],
        "step": [line(a) for a in block.step],
        "commit": [(str(s), show(v)) for s, v in block.commit],
        "next_state": [show(dict(block.commit).get(s, s)) for s, _ in block.state],
        "weight": [line(a) for a in block.weight],
        "target": [show(e) for e in block.target],
        "pivots": [(show(p), show(dg)) for p, dg in block.pivots],
    }


def _one_line(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_source(sde, ir: KernelIR, backend: str, fingerprint: str) -> str:
    """The module source of ``ir`` for ``backend`` (``"numba"`` or ``"torch"``)."""
    printer = make_printer(backend)
    template = _environment().get_template(f"{backend}_kernel.py.j2")
    return template.render(
        name=sde.name, version=__version__, header=header_lines(sde, ir.structure), m=ir.m, d=ir.d,
        fingerprint=fingerprint, blocks=[_printed_block(b, printer) for b in ir.blocks],
    )
