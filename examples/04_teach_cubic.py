"""The derivation of the score target for the cubic SDE dX = -X^3 dt + s dB, written out as
Markdown and as a LaTeX document (compiled to PDF when pdflatex is installed).

    python examples/04_teach_cubic.py [OUT]
"""
import shutil
import subprocess

import symscore as ss
from _common import output_folder

out = output_folder(__file__)
derivation = ss.library.cubic(m=2, s=1.0).derive()
(out / "cubic.md").write_text(derivation.to_markdown())
(out / "cubic.tex").write_text(derivation.to_latex())
print(f"wrote {out / 'cubic.md'} and {out / 'cubic.tex'}")
for title, _ in derivation.steps:
    print(" -", title)
if shutil.which("pdflatex"):
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "cubic.tex"], cwd=out,
                   check=True, capture_output=True)
    print(f"wrote {out / 'cubic.pdf'}")
