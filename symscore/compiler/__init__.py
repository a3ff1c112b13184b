"""Stage 3, the compiler: derivation -> IR -> printed module -> loaded kernel.

``ir``         the kernel's intermediate representation, straight-line assignments built by pure
               functions, one per formula of the recursion (docs/math.md);
``printing``   one SymPy printer per target language over those assignments;
``codegen``    renders a backend's module skeleton (Jinja2 templates in ``templates/``);
``runtime``    host-side checks (time grid, x0, dW) and failure reports, shared by :class:`Kernel`
               and rendered verbatim into emitted modules;
``backends``   the registry of backends, one module each (printer, template, array adapter, options);
``kernel``     ``compile``/``emit`` and :class:`Kernel`/:class:`Paths`; ``cache`` keeps modules on disk.
"""
