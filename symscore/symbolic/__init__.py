"""Stage 2, the symbolic derivation (SymPy only): J, H, the variation equations, structure.

``derivation``   :class:`Derivation` of one SDE; J and H are computed here once and reused by every
                 later stage (the compiler's IR, the numerical views);
``noise_reach``  how the noise reaches each coordinate (bracket depth, small-t order of C_t, the
                 Euler steps before the scheme's C is invertible);
``closed_form``  closed forms of linear SDEs (Y_t, C_t, the Gaussian score), for tests and teaching.
The numerical views of an SDE live after the kernel, in :mod:`symscore.learn.numeric_sde`.
"""
