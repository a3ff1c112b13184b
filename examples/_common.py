"""Shared by the examples: the small-mode switch and the output folder.

SYMSCORE_SMALL=1 runs every example with tiny sizes (seconds; the tests use it, the figures are
then not meaningful). The output folder is the first command-line argument, else
example_output/<example name>.
"""
import os
import sys
from pathlib import Path

SMALL = os.environ.get("SYMSCORE_SMALL", "") not in ("", "0")


def size(full, small):
    """``full`` normally, ``small`` under SYMSCORE_SMALL=1."""
    return small if SMALL else full


def output_folder(script: str) -> Path:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("example_output") / Path(script).stem
    folder.mkdir(parents=True, exist_ok=True)
    return folder
