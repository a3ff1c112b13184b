"""On-disk cache of generated kernel modules.

Generated sources are written to ``$SYMSCORE_CACHE_DIR`` (else ``$XDG_CACHE_HOME/symscore``,
else ``~/.cache/symscore``) under a name derived from the SDE's fingerprint, so a second
process reuses both the source and numba's compiled code (``cache=True`` keys on the file).
The first line of every file is a checksum of the rest: a truncated or edited file is detected
and rewritten. Writes are atomic (temporary file + ``os.replace``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "cache_dir", "load_or_write_module"]

_CHECKSUM_PREFIX = "# symscore-checksum: sha256="


def cache_dir() -> Path:
    """The cache folder (created on demand)."""
    env = os.environ.get("SYMSCORE_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symscore"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _with_checksum(source: str) -> str:
    return f"{_CHECKSUM_PREFIX}{hashlib.sha256(source.encode()).hexdigest()}\n{source}"


def _is_intact(path: Path) -> bool:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    first, _, rest = text.partition("\n")
    return first == f"{_CHECKSUM_PREFIX}{hashlib.sha256(rest.encode()).hexdigest()}"


def atomic_write(path: Path, content) -> None:
    """Write to ``path`` through a temporary file in the same folder, fsync, then ``os.replace``.

    ``content`` is a str (written as text) or a callable that writes to the binary stream it is given
    (e.g. ``lambda stream: torch.save(payload, stream)``). A reader never sees a half-written file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            content(handle) if callable(content) else handle.write(content.encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_write_module(key: str, make_source):
    """Import the cached module ``key``, writing ``make_source()`` first if missing or damaged.

    Returns (module, path, was_cached).
    """
    path = cache_dir() / f"{key}.py"
    was_cached = path.exists() and _is_intact(path)
    if not was_cached:
        atomic_write(path, _with_checksum(make_source()))
    module_name = f"symscore_kernel_{key}"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(path) and was_cached:
        return sys.modules[module_name], path, True
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module, path, was_cached
