"""The documentation cannot rot: every runnable code block of README.md and docs/ runs here.

A fence whose language is exactly ``python`` or ``bash`` runs (mktestdocs); anything else is an
illustration and does not: ``console`` for shell commands not to run here (``make demo``, GPU
runs, long trainings), ``py`` or ``pycon`` for Python fragments, ``text`` for printed output,
``toml`` for specs. The python blocks of one page run in order in one namespace; its bash blocks
run in order in one ``bash -eu`` script, with the virtual environment's ``bin`` first on PATH.
Both run in a temporary folder, so nothing is written into the repository. The convention is
stated for writers in docs/architecture.md ("Documentation").
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

mktestdocs = pytest.importorskip("mktestdocs", reason="mktestdocs is not installed (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def _blocks(page: Path, lang: str) -> list[str]:
    return mktestdocs.grab_code_blocks(page.read_text(), lang=lang)


def _registries():
    """The process-wide registries a page may add to (backends, targets, samplers, priors)."""
    from symscore.compiler.backends import BACKENDS
    from symscore.learn.priors import PRIORS
    from symscore.learn.samplers import SAMPLERS
    from symscore.learn.targets import TARGETS

    return BACKENDS, TARGETS, SAMPLERS, PRIORS


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder with the interpreter's bin directory first on PATH and no GUI backend;
    what a page registers (a sampler, a target, ...) is removed afterwards, so pages stay independent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    saved = [(registry, dict(registry)) for registry in _registries()]
    yield tmp_path
    for registry, entries in saved:
        registry.clear()
        registry.update(entries)


#: (page, language) for every page with runnable blocks of that language: one test each, named by the page
RUNNABLE = [(page, lang) for page in PAGES for lang in ("python", "bash") if _blocks(page, lang)]


@pytest.mark.parametrize("page, lang", RUNNABLE, ids=[f"{p.relative_to(ROOT)}:{lang}" for p, lang in RUNNABLE])
def test_code_blocks(page, lang, in_tmp):
    """The page's blocks of ``lang`` run in order: python in one namespace, bash as one `bash -eu` script."""
    mktestdocs.check_md_file(page, memory=True, lang=lang)


def test_the_readme_and_the_tutorials_have_runnable_blocks():
    """The pages a user copies from are among those that run (a renamed fence would drop them silently)."""
    running = {page.relative_to(ROOT).as_posix() for page, _ in RUNNABLE}
    assert "README.md" in running and {f"docs/tutorials/{page.name}" for page in (ROOT / "docs/tutorials").glob("*.md")} <= running


def test_fence_languages_are_known():
    """Every fence names a language from the convention, so a typo cannot silently skip a block."""
    known = {"python", "bash", "console", "py", "pycon", "text", "toml", "latex", "markdown"}
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("```") and stripped != "```":
                language = stripped[3:].split()[0]
                assert language in known, f"{page.relative_to(ROOT)}:{number}: fence language {language!r} not in {sorted(known)}"


def test_site_builds_strict(tmp_path):
    """`mkdocs build --strict` succeeds: no broken link, no docstring the reference cannot render."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    result = subprocess.run([mkdocs, "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
