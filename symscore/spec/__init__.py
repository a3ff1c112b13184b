"""Stage 1, the specification: what the user writes.

``sde``      the :class:`SDE` value object (drift b(t, x), diffusion sigma, state, time, parameters);
``parse``    the safe expression parser, TOML specs and ``SPEC`` strings of the command line;
``library``  the built-in SDEs, plain functions returning an :class:`SDE`.

Nothing here differentiates or generates code; ``SDE.derive()`` hands over to :mod:`symscore.symbolic`.
"""
