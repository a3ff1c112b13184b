"""Every example runs in its small mode (SYMSCORE_SMALL=1) and writes what it promises."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WRITES = {
    "01_new_sde.py": [],
    "02_emit_module.py": ["benes_kernel.py"],
    "03_nonlinear_vs_vp.py": ["samples.png", "metrics.json"],
    "04_teach_cubic.py": ["cubic.md", "cubic.tex"],
    "05_digits_64d.py": ["digits.png"],
    "06_fields_on_the_sphere.py": ["maps.png", "spectra.png"],
    "07_particles.py": ["particles.png"],
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("[0-9]*.py")) == sorted(WRITES)


#: examples whose small mode still trains a model (20-25 s each, cold): the slow suite runs them; the
#: training, sampling and field code they use is tested in the default suite
TRAINING_EXAMPLES = {"03_nonlinear_vs_vp.py", "05_digits_64d.py", "06_fields_on_the_sphere.py", "07_particles.py"}


#: examples whose SDE is built in the loop form (tests/conftest.py runs those first)
LOOP_FORM_EXAMPLES = {"07_particles.py"}


def _marks(name):
    return [pytest.mark.slow] * (name in TRAINING_EXAMPLES) + [pytest.mark.loop_kernel] * (name in LOOP_FORM_EXAMPLES)


@pytest.mark.parametrize("script", [pytest.param(name, marks=_marks(name)) for name in sorted(WRITES)])
def test_example_small_mode(tmp_path, script):
    env = os.environ | {"SYMSCORE_SMALL": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(EXAMPLES / script), str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for name in WRITES[script]:
        assert (tmp_path / name).stat().st_size > 0, name
    if script == "01_new_sde.py":
        assert result.stdout.count("E[grad phi]") == 2
    if script == "04_teach_cubic.py":
        assert "H_{1;11}" in (tmp_path / "cubic.md").read_text()
