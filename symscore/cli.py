"""The ``symscore`` command line (argparse; the full command set is tracked in the issues)."""
from __future__ import annotations

import argparse
import sys

from . import library
from ._errors import SymscoreError


def _load_spec(spec: str):
    if spec in library.BUILTINS:
        return library.BUILTINS[spec]()
    raise SymscoreError(f"SPEC: unknown SDE {spec!r}; built-ins: {', '.join(library.BUILTINS)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symscore", description="Symbolic-to-numeric score compiler.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train + sample: cubic/Malliavin vs VP/DSM on the checkerboard "
                                       "(example: symscore demo --out demo)")
    demo.add_argument("--out", default="demo", help="output folder for PNGs and metrics.json")
    demo.add_argument("--steps", type=int, default=4000, help="training steps per model")
    demo.add_argument("--benes", action="store_true", help="instead: the Benes kernel check (target vs exact score)")
    derive = sub.add_parser("derive", help="the derivation of a built-in SDE (example: symscore derive cubic)")
    derive.add_argument("spec", help=f"a built-in name: {', '.join(library.BUILTINS)}")
    derive.add_argument("--format", choices=("markdown", "latex"), default="markdown")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_benes_check, run_demo

            run_benes_check() if args.benes else run_demo(out=args.out, steps=args.steps)
        elif args.command == "derive":
            der = _load_spec(args.spec).derive()
            print(der.to_markdown() if args.format == "markdown" else der.to_latex())
    except SymscoreError as exc:
        print(f"symscore: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
