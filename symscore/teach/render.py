"""The derivation written out for one SDE: the teaching document behind ``Derivation.to_markdown``.

Each :class:`Section` is a title, a sentence of prose and display equations, with the user's own
drift, Jacobian, Hessian and diffusion substituted. The path from the SDE to the target follows
docs/math.md: variation equations, the Malliavin derivative D_r X_t, the Malliavin matrix, the covering
field, its Skorokhod integral by the product rule, D_r Y_s through the second variation, and the
running integrals that make the weight O(1) per recorded time. Linear SDEs also get the closed
form (where SymPy integrates it), the reduction to the denoising target and the small-t order of
gamma_t^{-1}.

Prose is ASCII with inline ``$...$`` math, valid both in Markdown and in LaTeX; renderers below
turn the same sections into Markdown, a standalone LaTeX document or Jupyter's display math.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

__all__ = ["Section", "sections", "index_letters", "render_markdown", "render_latex_document", "render_display_math"]

#: Above this dimension matrices are listed by their non-zero entries instead of written out.
_MAX_MATRIX = 6
#: At most this many entries / equations are listed; the rest are counted.
_MAX_LISTED = 12
L = sp.latex
SIGMA, GAMMA = r"\sigma", r"\gamma"


@dataclass(frozen=True)
class Section:
    title: str
    prose: str
    equations: tuple[str, ...]


def _index(*indices: int, size: int, head: int | None = None) -> str:
    """1-based subscript of 0-based indices, comma-separated when ``size`` (the dimension) reaches
    10: ``12`` or ``10,10``; with ``head``: ``p;qw``."""
    body = ("," if size >= 10 else "").join(str(k + 1) for k in indices)
    return body if head is None else f"{head + 1};{body}"


def _matrix(matrix: sp.Matrix, name: str) -> str:
    """The matrix written out (s I when it is a multiple of the identity), or its non-zero entries
    when it is large."""
    if matrix.shape == (1, 1):
        return L(matrix[0, 0])
    if matrix.rows == matrix.cols > 1 and matrix.is_diagonal() and len(set(matrix.diagonal())) == 1:
        entry = matrix[0, 0]
        if entry in (0, 1):
            return "0" if entry == 0 else "I"
        return (rf"\left({L(entry)}\right) I" if entry.is_Add else rf"{L(entry)}\, I")
    if max(matrix.shape) <= _MAX_MATRIX:
        return L(matrix)
    entries = [(i, j, e) for (i, j), e in sorted(matrix.todok().items())]
    size = max(matrix.shape)
    shown = [rf"{name}_{{{_index(i, size=size) if matrix.cols == 1 else _index(i, j, size=size)}}} = {L(e)}"
             for i, j, e in entries[:_MAX_LISTED]]
    rest = len(entries) - len(shown)
    return r"\left\{" + r",\ ".join(shown) + (rf",\ \dots\ (\text{{{rest} more}})" if rest else "") + r"\right\}"


def _listed(items: list[str]) -> tuple[str, ...]:
    rest = len(items) - _MAX_LISTED
    return tuple(items[:_MAX_LISTED]) + ((rf"\dots\ \text{{and {rest} more}}",) if rest > 0 else ())


def _order_text(order: int) -> tuple[str, str]:
    """(plain, LaTeX) of O(t^order): O(1/t), O(1/t^2), ..."""
    if order >= 0:
        plain = "O(1)" if order == 0 else f"O(t^{order})"
    else:
        plain = "O(1/t)" if order == -1 else f"O(1/t^{-order})"
    return plain, plain.replace("O", r"\mathcal O").replace(f"^{abs(order)}", f"^{{{abs(order)}}}")


# -- the sections (the same for every SDE are constants) --------------------------------------------------------------------------------
def _sde_section(der) -> Section:
    sde = der.sde
    params = ", ".join(f"${L(s)} = {L(v)}$" for s, v in sorted(sde.params.items(), key=lambda kv: str(kv[0])))
    prose = (f"State $x = ({', '.join(L(s) for s in sde.state)})$ in $\\mathbb R^{{{sde.m}}}$, "
             f"Brownian motion $B$ in $\\mathbb R^{{{sde.d}}}$, time ${L(sde.time)}$ in $[0, {sde.T:g}]$"
             + (f"; parameters {params}" if params else "") + ". The diffusion does not depend on the state.")
    return Section("The SDE", prose, (
        r"dX_t = b(t, X_t)\,dt + \sigma(t)\,dB_t",
        rf"b({L(sde.time)}, x) = {_matrix(sde.drift, 'b')},\qquad \sigma({L(sde.time)}) = {_matrix(sde.diffusion, SIGMA)}",
    ))


def _jacobian_section(der) -> Section:
    return Section("Jacobian of the drift", "Entry $(@i, @j)$ is the derivative of $b_@i$ in $x_@j$.",
                   (rf"J(t, x) = \frac{{\partial b}}{{\partial x}} = {_matrix(der.jacobian, 'J')}",))


_STRUCTURE = {
    "linear": "The drift is linear in $x$: the Hessian vanishes, and so do the second variation and every "
              "correction term below.",
    "separable": "Each $b_@i$ depends on $x_@i$ only and $\\sigma$ is diagonal: the problem splits into "
                 "$m$ independent one-dimensional ones (the kernel uses the 1-D formula per coordinate).",
    "coupled": "The drift couples the coordinates: the kernel carries the full $m \\times m \\times m$ "
               "second variation.",
}


def _hessian_section(der) -> Section:
    entries = der.nonzero_hessian()
    x = der.sde.state  # derivatives by the state symbols themselves: nothing to confuse with an index
    equations = [rf"H_{{{_index(q, w, size=der.sde.m, head=p)}}} = \frac{{\partial^2 b_{{{p + 1}}}}}"
                 rf"{{\partial {L(x[q])}\,\partial {L(x[w])}}} = {L(e)}" for (p, q, w), e in entries]
    prose = ("$H[@p; @q, @w]$ is symmetric in $@q, @w$; its non-zero entries with $@q \\le @w$ are listed. "
             if entries else "Every second derivative of the drift is zero: $H \\equiv 0$. ")
    return Section("Hessian of the drift (non-zero entries)", prose + _STRUCTURE[der.structure],
                   _listed(equations) or (r"H \equiv 0",))


def _first_variation_section(der) -> Section:
    J = rf" = {_matrix(der.jacobian, 'J')}\, Y_t" if der.sde.m <= _MAX_MATRIX else ""
    return Section("First variation",
                   "$Y_t = \\partial X_t / \\partial x_0$ solves the SDE linearised along the path "
                   "(evaluate $J$ at $x = X_t$); its inverse solves the adjoint equation.",
                   (rf"\frac{{d}}{{dt}} Y_t = J(t, X_t)\, Y_t{J},\qquad Y_0 = I",
                    r"\frac{d}{dt} Y_t^{-1} = -Y_t^{-1} J(t, X_t),\qquad Y_0^{-1} = I"))


def _second_variation_section(der) -> Section:
    if der.is_linear:
        return Section("Second variation", "With $H \\equiv 0$ the second variation stays at zero.",
                       (r"Z_t = \frac{\partial^2 X_t}{\partial x_0^2} \equiv 0,\qquad \hat Z_t \equiv 0",))
    generic = (r"\frac{d}{dt} Z_t[@i; @a, @b] = \sum_{@q,@w} H[@i; @q, @w]\, Y_t[@q, @a]\, Y_t[@w, @b] "
               r"+ \sum_@p J_{@i@p}\, Z_t[@p; @a, @b],\qquad Z_0 = 0")
    reduced = (r"\frac{d}{dt}\hat Z_t[@i; @a, @b] = \sum_{@p,@q,@w} (Y_t^{-1})_{@i@p}\, H[@p; @q, @w]\, Y_t[@q,@a]\, Y_t[@w,@b],"
               r"\qquad \hat Z_t = Y_t^{-1} Z_t,\ \hat Z_0 = 0")
    prose = ("$Z_t[@i; @a, @b] = \\partial^2 X^@i_t / \\partial x_0^@a \\partial x_0^@b$; with this drift "
             "(at $x = X_t$) the equations that are not identically zero read as below. The kernel carries "
             "$\\hat Z = Y^{-1} Z$ instead, for which the $J Z$ term cancels.")
    if der.structure == "separable":  # Y is diagonal: per coordinate, the 1-D integral
        explicit = [r",\quad ".join(
            rf"\hat Z^{{({i + 1})}}_t = \int_0^t {L(der.hessian[i, i, i].subs(x, sp.Symbol(f'X^{{{i + 1}}}_@s')))}"
            rf"\, Y^{{({i + 1})}}_@s\, d@s" for i, x in enumerate(der.sde.state[:4])) + (r",\ \dots" if der.sde.m > 4 else "")]
    else:  # the written-out equations are O(m^4) terms: only for small m
        explicit = [L(eq) for eq in der.second_variation if eq.rhs != 0] if der.sde.m <= 3 else []
    return Section("Second variation", prose, (generic, *_listed(explicit), reduced))


def _malliavin_derivative_section(der) -> Section:
    sigma = _matrix(der.sde.diffusion.subs(der.sde.time, sp.Symbol("@r")), SIGMA)
    return Section("Malliavin derivative of $X_t$",
                   "A kick of the noise at time $@r \\le t$ enters as $\\sigma(@r)$ and is then carried by the "
                   "first variation from $@r$ to $t$.",
                   (r"D_@r X_t = Y_t\, Y_@r^{-1} \sigma(@r) = Y_t A_@r \ \ (@r \le t),\qquad D_@r X_t = 0\ \ (@r > t)",
                    rf"A_@r = Y_@r^{{-1}} \sigma(@r) = Y_@r^{{-1}} {sigma}"))


def _malliavin_matrix_section(der) -> Section:
    sst = (der.sde.diffusion * der.sde.diffusion.T).applyfunc(sp.simplify).subs(der.sde.time, sp.Symbol("@r"))
    return Section("Malliavin matrix",
                   "$\\gamma_t$ is the covariance of the kicks as seen at time $t$; it is invertible when $C_t$ "
                   "is (when it is not, e.g. $d < m$ without coupling, symscore raises "
                   "SingularMalliavinMatrixError or regularises with ridge $> 0$).",
                   (r"\gamma_t = \int_0^t D_@r X_t\, (D_@r X_t)^\top d@r = Y_t C_t Y_t^\top",
                    rf"C_t = \int_0^t A_@r A_@r^\top d@r = \int_0^t Y_@r^{{-1}} {_matrix(sst, 'S')} Y_@r^{{-\top}}\, d@r"))


_COVERING = Section("Covering field and the score",
                    "The field $u$ inverts the Malliavin derivative of $X_t$; the duality of $D$ and the "
                    "Skorokhod integral $\\delta$ then moves the derivative off the test function, which gives "
                    "the score as a conditional expectation.",
                    (r"u(@r) = \gamma_t^{-1} D_@r X_t = Y_t^{-\top} C_t^{-1} A_@r,\qquad "
                     r"\int_0^t D_@r X_t\, u(@r)^\top d@r = I",
                     r"\mathbb E[\partial_@k \varphi(X_t)] = \mathbb E[\langle D\varphi(X_t), u_@k\rangle] "
                     r"= \mathbb E[\varphi(X_t)\, \delta(u_@k)]",
                     r"\nabla \log p_t(y) = -\,\mathbb E[\delta(u) \mid X_t = y]"))


_SKOROKHOD = Section("Skorokhod integral by the product rule",
                     "$u = F A$ with $F = Y_t^{-\\top} C_t^{-1}$, which depends on the whole path up to $t$, and "
                     "$A$ adapted. The product rule of the divergence, $\\delta(F A) = F\\,\\delta(A) - "
                     "\\int \\mathrm{tr}(D_@r F\\, A_@r)\\,d@r$, leaves an Ito integral and derivatives of $Y_t$ and "
                     "$C_t$.",
                     (r"\delta(u) = Y_t^{-\top} C_t^{-1} M_t - \int_0^t \sum_{@l=1}^{d} (D^@l_@r F)\, A_@r @e_@l\, d@r,"
                      r"\qquad M_t = \int_0^t A_@r\, dB_@r",
                      r"D^@l_@r F = D^@l_@r(Y_t^{-\top})\, C_t^{-1} - Y_t^{-\top} C_t^{-1} (D^@l_@r C_t)\, C_t^{-1},\qquad "
                      r"D^@l_@r C_t = \int_@r^t \left(D^@l_@r A_@s\, A_@s^\top + A_@s\, (D^@l_@r A_@s)^\top\right) d@s"))


def _derivative_of_y_section(der) -> Section:
    prose = ("Differentiating $\\dot Y = J Y$ in the noise at time $@r$ (with $D_@r X_@s = Y_@s A_@r$) gives a linear "
             "equation driven by the Hessian; variation of constants solves it with the second variation, so "
             "no Malliavin derivative is left to simulate.")
    if der.is_linear:
        prose += " Here $H \\equiv 0$: $D_@r Y_@s = 0$, $D_@r F = 0$ and $\\delta(u) = F M_t$."
    return Section("Malliavin derivative of the first variation", prose, (
        r"\frac{d}{d@s} D^@l_@r Y_@s = J(@s, X_@s)\, D^@l_@r Y_@s + H(@s, X_@s)[\,Y_@s A_@r @e_@l,\ Y_@s\,],\qquad @s \ge @r",
        r"D^@l_@r Y_@s = Y_@s\, (\hat Z_@s - \hat Z_@r)[A_@r @e_@l,\ \cdot\,],\qquad "
        r"D^@l_@r A_@s = -(\hat Z_@s - \hat Z_@r)[A_@r @e_@l,\ \cdot\,]\, A_@s",
        r"(\hat Z[\alpha, \cdot\,])_{@i@b} = \sum_@a \hat Z[@i; @a, @b]\, \alpha_@a"))


_RUNNING_INTEGRALS = Section("Running integrals",
                             "Inserting $D_@r Y$ and $D_@r A$ into the double integrals factors them into integrals that run "
                             "forward with the path, so one pass of $N$ Euler steps gives the weight at every recorded "
                             "time: $O(N)$ per path.",
                             (r"S_t = A_t A_t^\top,\quad C_t = \int_0^t S_@r\, d@r,\quad M_t = \int_0^t A_@r\, dB_@r",
                              r"Q_t[@i; @j, @b] = \int_0^t \sum_@a S_@r[@i, @a]\, \hat Z_@r[@j; @a, @b]\, d@r,\qquad "
                              r"\tilde H_@s[@i; @j, @b] = \sum_@a C_@s[@i, @a]\, \hat Z_@s[@j; @a, @b] - Q_@s[@i; @j, @b]",
                              r"R_t[@i; @j, @c] = \int_0^t \sum_@b \left(\tilde H_@s[@i; @j, @b]\, S_@s[@b, @c] "
                              r"+ S_@s[@j, @b]\, \tilde H_@s[@i; @c, @b]\right) d@s"))


def _target_section(der) -> Section:
    equations = [r"v_@b = \sum_@j \hat Z_t[@j; @j, @b] - \sum_{@i,@j} (C_t^{-1})_{@i@j}\, Q_t[@i; @j, @b],\qquad "
                 r"\rho_@c = \sum_{@i,@j} (C_t^{-1})_{@i@j}\, R_t[@i; @j, @c]",
                 r"\delta_t = Y_t^{-\top}\left(C_t^{-1} M_t + v - C_t^{-1} \rho\right)",
                 r"\text{target}_t = -\delta_t,\qquad \mathbb E[\text{target}_t \mid X_t] = \nabla \log p_t(X_t)"]
    prose = "The weight at time $t$ is a closed form of the running integrals; its negative is the target."
    if der.structure == "separable":
        prose += (" Per coordinate ($m = d = 1$) it reads as the last line, with $\\hat Z_t = \\int b''(X) Y\\,dq$, "
                  "$C = \\int (\\sigma / Y)^2$ and $D = \\int S_@s (\\hat Z_@s C_@s - Q_@s)\\, d@s$.")
        equations.append(r"\delta_t = \frac{M_t + (C_t \hat Z_t - Q_t) - \frac{2}{C_t} D_t}{C_t Y_t}")
    return Section("The weight and the target", prose, tuple(equations))


def _linear_sections(der) -> list[Section]:
    sections = [Section("Linear drift: the denoising target",
                        "With $H \\equiv 0$: $\\hat Z = Q = R = 0$, so $v = \\rho = 0$, and the weight is the "
                        "denoising score matching target (with a deterministic $X_0$ it is the exact Gaussian "
                        "score, path by path).",
                        (r"\delta_t = Y_t^{-\top} C_t^{-1} M_t = \gamma_t^{-1}\left(X_t - \mathbb E[X_t \mid X_0]\right)",
                         r"\text{target}_t = -\gamma_t^{-1}\left(X_t - \mathbb E[X_t \mid X_0]\right)"))]
    closed = der.closed_form
    if closed is None:
        sections.append(Section("Closed form", "SymPy found no closed form for $\\gamma_t$ here ($B(t)$ does not "
                                "commute with itself at other times, or an integral did not evaluate); the "
                                "kernel integrates $C_t$ along the path instead.", ()))
        return sections
    t = closed.time
    x0 = ", ".join(L(s) for s in closed.x0)
    equations = [rf"Y_t = {_matrix(closed.Y, 'Y')},\qquad C_t = {_matrix(closed.C, 'C')}",
                 rf"\gamma_t = Y_t C_t Y_t^\top = {_matrix(closed.gamma, GAMMA)}",
                 rf"\mathbb E[X_t \mid X_0 = ({x0})] = {_matrix(closed.mean, 'm')}"]
    if closed.target is not None:
        equations.append(rf"\text{{target}}_t = {_matrix(closed.target, 'g')}\quad \text{{at }} X_t = x")
    sections.append(Section("Closed form", "SymPy integrates the first variation and $C_t$ for this drift "
                            "($B(t) = \\partial b / \\partial x$ commutes with itself at all times).", tuple(equations)))
    if closed.order is not None:
        order, order_tex = _order_text(closed.order)
        sections.append(Section(
            "Small-t order of the inverse Malliavin matrix",
            f"From SymPy series of $\\gamma_t$ at $t = 0$: $\\gamma_t^{{-1}} = {order_tex}$ "
            f"({order} as t -> 0). For a linear SDE the target's covariance given $X_0$ is $\\gamma_t^{{-1}}$ "
            "itself, so its variance grows at that rate near $t = 0$. "
            "A time cut-off t_min or ridge regularisation bounds it at the price of a bias.",
            (rf"\gamma_t^{{-1}} = {_matrix(closed.leading, 'L')}\; {L(t ** closed.order)} + \dots "
             rf"= {order_tex}\quad (t \to 0)",)))
    return sections


# -- a diffusion that depends on the state (docs/math.md, "State-dependent diffusion") -----------------
def _diffusion_derivatives_section(der) -> Section:
    x = der.sde.state
    entries = [rf"G_{{{l + 1}}}[{p + 1}, {q + 1}] = \frac{{\partial \sigma_{{{p + 1}{l + 1}}}}}{{\partial {L(x[q])}}} = {L(g)}"
               for (p, l, q), g in sorted(der.diffusion_gradient.items())]
    second = [rf"H^\sigma_{{{l + 1}}}[{p + 1}; {q + 1}, {w + 1}] = {L(h)}"
              for (p, l, q, w), h in sorted(der.diffusion_hessian.items())]
    return Section("Derivatives of the diffusion",
                   r"$\sigma$ depends on the state, so its columns $\sigma_@l$ have a Jacobian $G_@l$ and a Hessian "
                   r"$H^\sigma_@l$ (non-zero entries, Ito calculus throughout).",
                   (*_listed(entries), *_listed(second)) or (r"G_@l \equiv 0",))


def _ito_first_variation_section(der) -> Section:
    return Section("First variation (Ito)",
                   "The noise now enters the linearisation: $Y_t$ solves a linear SDE, and its inverse gets an Ito "
                   "correction. The kernel steps $Y^{-1}$ by the inverse of the Euler step of $Y$ to second order, "
                   "so that $Y Y^{-1} = I + O(dt^{3/2})$ per step.",
                   (r"dY_t = J\, Y_t\, dt + \sum_@l G_@l\, Y_t\, dB^@l_t,\qquad Y_0 = I",
                    r"dY_t^{-1} = Y_t^{-1}\Big(-J + \sum_@l G_@l G_@l\Big) dt - \sum_@l Y_t^{-1} G_@l\, dB^@l_t"))


def _ito_second_variation_section(der) -> Section:
    return Section("Second variation (Ito)",
                   "The reduced second variation gains a noise term driven by the Hessians of the diffusion "
                   "columns.",
                   (r"d\hat Z_t = Y_t^{-1}\Big(H - \sum_@l G_@l H^\sigma_@l\Big)[Y_t\cdot, Y_t\cdot]\, dt"
                    r" + \sum_@l Y_t^{-1} H^\sigma_@l[Y_t\cdot, Y_t\cdot]\, dB^@l_t,\qquad \hat Z_0 = 0",
                    r"(G_@l H^\sigma_@l)[@p; @q, @w] = \sum_@u G_@l[@p, @u]\, H^\sigma_@l[@u; @q, @w]"))


_STATE_DEPENDENT_INTEGRALS = Section(
    "Running integrals of a state-dependent diffusion",
    r"Besides $C$, $M$, $Q$ and $R$ (as before, with $A_t = Y_t^{-1}\sigma(t, X_t)$), three more integrals "
    "run forward with the path.",
    (r"K^@l_t = Y_t^{-1} G_@l\, Y_t,\qquad P_t[@i; @j, @b] = \int_0^t \sum_@l A_@s[@i, @l]\, K^@l_@s[@j, @b]\, d@s",
     r"RK_t[@i; @j, @c] = \int_0^t \sum_@b \left(P_@s[@i; @j, @b]\, S_@s[@b, @c] + S_@s[@j, @b]\, P_@s[@i; @c, @b]\right) d@s",
     r"R\Psi_t[@i; @j, @c] = \int_0^t \sum_@a C_@s[@i, @a] \sum_@e \left(K^@e_@s[@j, @a]\, A_@s[@c, @e] + A_@s[@j, @e]\, K^@e_@s[@c, @a]\right) d@s"))


_STATE_DEPENDENT_TARGET = Section(
    "The weight and the target",
    r"The weight keeps its form; $P$ enters $v$, and $RK$ and $R\Psi$ enter $\rho$. With $\sigma$ "
    "independent of the state, $G = 0$ and these reduce to the formulas above.",
    (r"v_@b = \sum_@j \hat Z_t[@j; @j, @b] - \sum_{@i,@j} (C_t^{-1})_{@i@j}\, Q_t[@i; @j, @b] + \sum_{@i,@j} (C_t^{-1})_{@i@j}\, P_t[@i; @j, @b]",
     r"\rho_@c = \sum_{@i,@j} (C_t^{-1})_{@i@j}\, \left(R_t + RK_t - R\Psi_t\right)[@i; @j, @c]",
     r"\delta_t = Y_t^{-\top}\left(C_t^{-1} M_t + v - C_t^{-1} \rho\right),\qquad \text{target}_t = -\delta_t"))


#: The index letters (and integration times r, s) of the generic formulas, written ``@i`` in the
#: templates above; one that is also the name of a symbol of the user's SDE gets primes.
_INDEX_LETTERS = "ijklabcepqwrsu"
_MARKER = re.compile(r"@([a-z])")


def index_letters(sde) -> dict[str, str]:
    """Template index letter -> what is written for ``sde``: the letter itself, unless one of the SDE's
    symbols (state, parameters, time) is written that way; then the letter with primes (``{p'}``),
    as many as it takes. So a state named p or i never reads as an index, in every output format."""
    taken = set()
    for symbol in (*sde.state, *sde.params, sde.time):
        taken |= {str(symbol), L(symbol)}
    table = {}
    for letter in _INDEX_LETTERS:
        chosen = letter
        while chosen in taken:
            chosen += "'"
        table[letter] = chosen if len(chosen) == 1 else "{" + chosen + "}"
    return table


def _filled(section: Section, table: dict[str, str]) -> Section:
    def fill(text):
        return _MARKER.sub(lambda match: table[match.group(1)], text)

    return Section(fill(section.title), fill(section.prose), tuple(fill(e) for e in section.equations))


def sections(der) -> list[Section]:
    """All sections of the derivation of ``der`` (a :class:`~symscore.Derivation`), in order, with
    index letters that no symbol of its SDE uses (:func:`index_letters`)."""
    table = index_letters(der.sde)
    return [_filled(section, table) for section in _template_sections(der)]


def _template_sections(der) -> list[Section]:
    if der.state_dependent_diffusion:
        return [_sde_section(der), _jacobian_section(der), _hessian_section(der),
                _diffusion_derivatives_section(der), _ito_first_variation_section(der),
                _ito_second_variation_section(der), _malliavin_derivative_section(der),
                _malliavin_matrix_section(der), _COVERING, _SKOROKHOD, _RUNNING_INTEGRALS,
                _STATE_DEPENDENT_INTEGRALS, _STATE_DEPENDENT_TARGET]
    parts = [_sde_section(der), _jacobian_section(der), _hessian_section(der), _first_variation_section(der),
             _second_variation_section(der), _malliavin_derivative_section(der), _malliavin_matrix_section(der),
             _COVERING, _SKOROKHOD, _derivative_of_y_section(der),
             _RUNNING_INTEGRALS, _target_section(der)]
    if der.is_linear:
        parts += _linear_sections(der)
    return parts


# -- renderers -----------------------------------------------------------------------------------
def render_markdown(name: str, parts: list[Section]) -> str:
    """Markdown with ``$...$`` inline and ``$$...$$`` display math (GitHub, Jupyter, pandoc)."""
    lines = [f"# Derivation of the score target for `{name}`", ""]
    for number, section in enumerate(parts, 1):
        lines += [f"## {number}. {section.title}", "", section.prose, ""]
        for equation in section.equations:
            lines += ["$$", equation, "$$", ""]
    return "\n".join(lines)


_LATEX_TEXT = {"_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "^": r"\^{}", "~": r"\~{}", "$": r"\$"}


def _latex_escape(text: str) -> str:
    """Plain text for LaTeX: its special characters escaped."""
    return "".join(_LATEX_TEXT.get(c, c) for c in text).replace("->", r"$\to$")


def _latex_prose(prose: str) -> str:
    """Prose for LaTeX: the ``$...$`` parts kept as math, the text between them escaped."""
    parts = prose.split("$")
    return "$".join(part if k % 2 else _latex_escape(part) for k, part in enumerate(parts))


def render_latex_document(name: str, parts: list[Section]) -> str:
    """A standalone LaTeX document (amsmath) that pdflatex compiles."""
    body = []
    for section in parts:
        body += [rf"\section{{{section.title}}}", _latex_prose(section.prose), ""]
        if section.equations:
            body += [r"\begin{gather*}", " \\\\\n".join(section.equations), r"\end{gather*}", ""]
    return "\n".join([
        r"\documentclass[10pt]{article}",
        r"\usepackage{amsmath,amssymb}",
        r"\usepackage[margin=1.5cm]{geometry}",
        r"\setcounter{MaxMatrixCols}{20}",
        r"\allowdisplaybreaks",
        rf"\title{{Score target for \texttt{{{_latex_escape(name)}}}}}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        *body,
        r"\end{document}",
        "",
    ])


def _display_title(number: int, title: str) -> str:
    """A title for display math: text parts in \\text{}, ``$...$`` parts left as math."""
    parts = title.split("$")
    pieces = [rf"\text{{{part}}}" if k % 2 == 0 else part for k, part in enumerate(parts) if part]
    return rf"\textbf{{{number}.}}\ " + "".join(pieces)


def render_display_math(parts: list[Section]) -> str:
    """One display-math block (Jupyter's ``_repr_latex_``): titles as text, then the equations."""
    rows = []
    for number, section in enumerate(parts, 1):
        rows.append(_display_title(number, section.title))
        rows += list(section.equations)
    return "$$\\begin{gathered}\n" + " \\\\\n".join(rows) + "\n\\end{gathered}$$"
