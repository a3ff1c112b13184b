"""The derivation written out for a concrete SDE (Markdown, LaTeX): text renderers, SymPy only.

:class:`symscore.Derivation` calls these for ``steps``, ``to_markdown()`` and ``to_latex()``.
"""
