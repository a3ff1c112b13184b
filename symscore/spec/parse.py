"""SPEC strings: how the command line (and :func:`load_spec`) names an SDE.

A SPEC is one of

* a built-in name of :mod:`symscore.library` (``cubic``, ``vp``, ...);
* ``path/to/file.py:object``, where ``object`` is an :class:`~symscore.SDE` or a function of no
  arguments returning one (the file is imported: it is the user's own Python);
* a TOML file whose expressions are strings::

      name = "mine"
      state = ["x", "y"]
      time = "t"                     # optional, default "t"
      params = { a = 0.5 }           # optional
      T = 1.0                        # optional time horizon
      drift = ["-x**3 + a*y", "-y - sin(x)"]
      diffusion = "1"                # a scalar (times I), or rows: [["1", "0"], ["0", "sqrt(1 + t)"]]

Expression strings never reach ``eval`` or ``sympify``: :func:`parse_expression` walks Python's
``ast`` of the text, accepts only numbers, declared names, ``+ - * / **``, unary signs and calls
of the functions in :data:`FUNCTIONS`, and builds the SymPy expression itself. Anything else is
rejected with the offending token. :func:`to_toml` writes an SDE back in this schema, so a trained
model folder can carry the SDE it was trained on as text.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import keyword
import math
import sys
import tomllib
from pathlib import Path

import sympy as sp

from . import library
from .._errors import SDESpecError
from .sde import SDE

__all__ = ["FUNCTIONS", "CONSTANTS", "parse_expression", "load_spec", "sde_from_toml", "to_toml"]

#: Functions an expression string may call (one argument each, except atan2).
FUNCTIONS = {f.__name__: f for f in (
    sp.sin, sp.cos, sp.tan, sp.cot, sp.sec, sp.csc, sp.asin, sp.acos, sp.atan, sp.atan2,
    sp.sinh, sp.cosh, sp.tanh, sp.coth, sp.sech, sp.csch, sp.asinh, sp.acosh, sp.atanh,
    sp.exp, sp.log, sp.sqrt, sp.erf,
)}
_ARITY = {"atan2": 2}
#: Named constants an expression string may use.
CONSTANTS = {"pi": sp.pi, "E": sp.E}

_BINARY = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}
_MAX_LENGTH = 10_000
_MAX_POWER_BITS = 4096  # numeric a**b is evaluated exactly by SymPy: refuse results this large
_KNOWN_KEYS = {"name", "state", "time", "params", "T", "drift", "diffusion"}

# What a rejected construct is called in the error (ast class name -> words).
_CONSTRUCT = {
    "Attribute": "attribute access", "Subscript": "subscript", "Lambda": "lambda", "Compare": "comparison",
    "BoolOp": "boolean operator", "IfExp": "conditional expression", "List": "list", "Tuple": "tuple",
    "Dict": "dict", "Set": "set", "ListComp": "comprehension", "GeneratorExp": "generator", "Starred": "star",
    "NamedExpr": "assignment", "JoinedStr": "f-string", "Await": "await", "Yield": "yield", "Slice": "slice",
}
_OPERATOR = {"BitXor": "^ (use ** for powers)", "FloorDiv": "//", "Mod": "%", "MatMult": "@", "BitAnd": "&",
             "BitOr": "|", "LShift": "<<", "RShift": ">>", "Not": "not", "Invert": "~"}


def _fail(what: str, text: str, node: ast.AST | None, message: str):
    where = f" at column {node.col_offset + 1}" if node is not None and hasattr(node, "col_offset") else ""
    raise SDESpecError(f"{what}: {message}{where} in {text!r}")


class _ExpressionBuilder:
    """Turns the ``ast`` of one expression string into SymPy, refusing everything off the whitelist."""

    def __init__(self, text: str, symbols: dict[str, sp.Symbol], what: str):
        self.text, self.symbols, self.what = text, symbols, what

    def token(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or type(node).__name__

    def reject(self, node: ast.AST, message: str):
        _fail(self.what, self.text, node, message)

    def build(self, node: ast.AST) -> sp.Expr:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            name = type(node).__name__
            described = _CONSTRUCT.get(name, name)
            self.reject(node, f"forbidden construct: {described} {self.token(node)!r}")
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.reject(node, f"forbidden constant {self.token(node)!r} (only real numbers are allowed)")
        if isinstance(value, float) and not math.isfinite(value):
            self.reject(node, f"the number {self.token(node)!r} is not finite")
        return sp.Integer(value) if isinstance(value, int) else sp.Float(self.token(node))

    def visit_Name(self, node: ast.Name) -> sp.Expr:
        if node.id in self.symbols:
            return self.symbols[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            self.reject(node, f"the function {node.id!r} must be called, e.g. {node.id}(x)")
        declared = ", ".join(self.symbols) or "none"
        self.reject(node, f"unbound symbol {node.id!r} (declared: {declared}; constants: pi, E)")

    def visit_BinOp(self, node: ast.BinOp) -> sp.Expr:
        operator = _BINARY.get(type(node.op))
        if operator is None:
            name = type(node.op).__name__
            self.reject(node, f"forbidden operator {_OPERATOR.get(name, name)}")
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Pow):
            self.check_power(node, left, right)
        if isinstance(node.op, ast.Div) and right == 0:
            self.reject(node, f"division by zero in {self.token(node)!r}")
        return operator(left, right)

    def check_power(self, node: ast.AST, base: sp.Expr, exponent: sp.Expr) -> None:
        if base.is_Number and exponent.is_Number and abs(base) > 1:
            bits = abs(float(exponent)) * math.log2(abs(float(base)))
            if bits > _MAX_POWER_BITS:
                self.reject(node, f"the power {self.token(node)!r} is too large to evaluate")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> sp.Expr:
        if isinstance(node.op, ast.USub):
            return -self.build(node.operand)
        if isinstance(node.op, ast.UAdd):
            return self.build(node.operand)
        name = type(node.op).__name__
        self.reject(node, f"forbidden operator {_OPERATOR.get(name, name)}")

    def visit_Call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            self.reject(node.func, f"forbidden call of {self.token(node.func)!r} (only named functions)")
        name = node.func.id
        if name not in FUNCTIONS:
            self.reject(node, f"function {name!r} is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})")
        if node.keywords:
            self.reject(node, f"keyword arguments are not allowed in {self.token(node)!r}")
        arity = _ARITY.get(name, 1)
        if len(node.args) != arity:
            self.reject(node, f"{name} takes {arity} argument{'s' * (arity > 1)}, got {len(node.args)}")
        return FUNCTIONS[name](*(self.build(arg) for arg in node.args))


def parse_expression(text, symbols: dict[str, sp.Symbol], what: str = "expression") -> sp.Expr:
    """Parse one expression string safely (module docstring); ``what`` names it in errors.

    >>> x = sp.Symbol("x")
    >>> parse_expression("-x**3 + sin(x)/2", {"x": x})
    -x**3 + sin(x)/2
    """
    if isinstance(text, bool) or isinstance(text, int | float):
        text = repr(text)
    if not isinstance(text, str):
        raise SDESpecError(f"{what}: expected an expression string, got {text!r} ({type(text).__name__})")
    if not text.strip():
        raise SDESpecError(f"{what}: expected an expression, got an empty string")
    if len(text) > _MAX_LENGTH:
        raise SDESpecError(f"{what}: the expression is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        column = f" at column {exc.offset}" if exc.offset else ""
        raise SDESpecError(f"{what}: syntax error{column} in {text!r}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise SDESpecError(f"{what}: cannot parse {text!r}: {type(exc).__name__}") from None
    builder = _ExpressionBuilder(text.strip(), symbols, what)
    try:
        return builder.build(tree.body)
    except RecursionError:
        raise SDESpecError(f"{what}: the expression is nested too deeply") from None


# -- TOML ------------------------------------------------------------------------------------
def _names(value, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise SDESpecError(f"{what}: expected a list of names such as [\"x\", \"y\"], got {value!r}")
    for name in value:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise SDESpecError(f"{what}: {name!r} is not a valid name (letters, digits, _; not a Python keyword)")
        if name in FUNCTIONS or name in CONSTANTS:
            raise SDESpecError(f"{what}: {name!r} is the name of a function or constant; choose another")
    return value


def _symbol_table(spec: dict) -> tuple[list[sp.Symbol], sp.Symbol, dict, dict[str, sp.Symbol]]:
    state = _names(spec.get("state"), "state")
    (time,) = _names(spec.get("time", "t"), "time")
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise SDESpecError(f"params: expected a table such as {{ a = 0.5 }}, got {params!r}")
    names = [*state, time, *_names(list(params), "params")] if params else [*state, time]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SDESpecError(f"state, time and params must use distinct names; repeated: {', '.join(repeated)}")
    table = {name: sp.Symbol(name) for name in names}
    return [table[n] for n in state], table[time], params, table


def _diffusion(value, table: dict[str, sp.Symbol]):
    if isinstance(value, list):
        if not all(isinstance(row, list) for row in value):
            raise SDESpecError("diffusion: expected a scalar string or a list of rows [[\"1\", \"0\"], [\"0\", \"1\"]]")
        return [[parse_expression(entry, table, f"diffusion[{i}][{j}]") for j, entry in enumerate(row)]
                for i, row in enumerate(value)]
    return parse_expression(value, table, "diffusion")


def sde_from_dict(spec: dict, default_name: str = "sde") -> SDE:
    """Build an SDE from the TOML schema of the module docstring, already read into a dict."""
    unknown = sorted(set(spec) - _KNOWN_KEYS)
    if unknown:
        raise SDESpecError(f"unknown key {unknown[0]!r}; expected keys: {', '.join(sorted(_KNOWN_KEYS))}")
    for key in ("state", "drift", "diffusion"):
        if key not in spec:
            raise SDESpecError(f"missing key {key!r} (the schema needs state, drift and diffusion)")
    state, time, params, table = _symbol_table(spec)
    drift = spec["drift"]
    if isinstance(drift, str):
        drift = [drift]
    if not isinstance(drift, list):
        raise SDESpecError(f"drift: expected a list of expression strings, got {drift!r}")
    drift = [parse_expression(entry, table, f"drift[{i}]") for i, entry in enumerate(drift)]
    return SDE(drift, _diffusion(spec["diffusion"], table), state, time, params=params,
               name=spec.get("name", default_name), T=spec.get("T", 1.0))


def sde_from_toml(path) -> SDE:
    """Read a TOML spec file (module docstring) into an SDE."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SDESpecError(f"SPEC: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SDESpecError(f"SPEC: cannot read {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SDESpecError(f"SPEC: {path.name} is not valid TOML: {exc}") from None
    stem = path.stem if path.stem.isidentifier() else "sde"
    try:
        return sde_from_dict(spec, default_name=stem)
    except SDESpecError as exc:
        raise SDESpecError(f"{path.name}: {exc}") from None


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _number(value) -> str:
    value = sp.sympify(value)
    return str(int(value)) if value.is_Integer else repr(float(value))


def to_toml(sde: SDE) -> str:
    """The SDE in the TOML schema of the module docstring; ``sde_from_toml`` reads it back.

    Raises SDESpecError when an expression uses a function outside :data:`FUNCTIONS`.
    """
    allowed = set(FUNCTIONS.values())
    for expr in [*sde.drift, *sde.diffusion]:
        for call in expr.atoms(sp.Function):
            if call.func not in allowed:
                raise SDESpecError(f"{sde.name}: {call.func.__name__} cannot be written to a TOML spec")
    params = ", ".join(f"{s} = {_number(v)}" for s, v in sorted(sde.params.items(), key=lambda kv: str(kv[0])))
    rows = ", ".join("[" + ", ".join(_quote(str(e)) for e in sde.diffusion.row(i)) + "]" for i in range(sde.m))
    lines = [f"name = {_quote(sde.name)}", f"state = [{', '.join(_quote(str(s)) for s in sde.state)}]",
             f"time = {_quote(str(sde.time))}", f"params = {{ {params} }}" if params else "params = {}",
             f"T = {sde.T!r}", f"drift = [{', '.join(_quote(str(e)) for e in sde.drift)}]",
             f"diffusion = [{rows}]"]
    return "\n".join(lines) + "\n"


# -- SPEC strings ----------------------------------------------------------------------------
def _from_python_file(spec: str) -> SDE:
    file_part, _, attribute = spec.rpartition(":")
    path = Path(file_part)
    if not path.is_file():
        raise SDESpecError(f"SPEC: no such file {file_part!r}")
    if not attribute.isidentifier():
        raise SDESpecError(f"SPEC: expected path/to/file.py:object, got the object name {attribute!r}")
    module_name = f"_symscore_spec_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: report, do not crash with a traceback
        raise SDESpecError(f"SPEC: importing {file_part} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(module_name, None)
    if not hasattr(module, attribute):
        raise SDESpecError(f"SPEC: {file_part} has no object {attribute!r}")
    obj = getattr(module, attribute)
    if callable(obj) and not isinstance(obj, SDE):
        try:
            obj = obj()
        except SDESpecError:
            raise
        except Exception as exc:
            raise SDESpecError(f"SPEC: calling {attribute}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, SDE):
        raise SDESpecError(f"SPEC: {spec} is a {type(obj).__name__}, expected an symscore.SDE "
                           "or a function returning one")
    return obj


def load_spec(spec) -> SDE:
    """The SDE a SPEC names: an SDE (returned as is), a built-in name, ``file.py:object`` or a TOML file."""
    if isinstance(spec, SDE):
        return spec
    if isinstance(spec, Path):
        spec = str(spec)
    if not isinstance(spec, str) or not spec:
        raise SDESpecError(f"SPEC: expected a built-in name, path/to/file.py:object or a .toml file, got {spec!r}")
    if spec in library.BUILTINS:
        return library.BUILTINS[spec]()
    if spec.endswith(".toml"):
        return sde_from_toml(spec)
    if ".py:" in spec:
        return _from_python_file(spec)
    raise SDESpecError(f"SPEC: unknown SDE {spec!r}; expected a built-in name ({', '.join(library.BUILTINS)}), "
                       "path/to/file.py:object or a .toml file")
