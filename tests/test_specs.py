"""SPEC strings and TOML specs: the safe expression parser, the schema, round trips, bad input."""
import builtins

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symscore as ss
from symscore.compiler.backends import make_printer
from symscore.compiler.printing import print_expr
from symscore.spec.parse import FUNCTIONS, parse_expression, sde_from_toml, to_toml

from conftest import FACTORIES, MINE_TOML

x, y, t, a = sp.symbols("x y t a")
TABLE = {"x": x, "y": y, "t": t, "a": a}



@pytest.mark.parametrize("text, expected", [
    ("-x**3 + a*y", -x**3 + a * y),
    ("-y - sin(x)", -y - sp.sin(x)),
    ("1/2*x", x / 2),                       # integer division stays an exact Rational
    ("2.5e-1 * x", sp.Float("0.25") * x),
    ("+x - -y", x + y),
    ("exp(-t) * tanh(pi*x) / sqrt(1 + t)", sp.exp(-t) * sp.tanh(sp.pi * x) / sp.sqrt(1 + t)),
    ("atan2(y, x) + E", sp.atan2(y, x) + sp.E),
    ("x**(1/3)", x ** sp.Rational(1, 3)),
])
def test_parse_builds_the_sympy_expression(text, expected):
    assert parse_expression(text, TABLE) == expected


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_allowed_function_prints_in_both_backends(name):
    arguments = "y, x" if name == "atan2" else "x / 3"
    expr = parse_expression(f"{name}({arguments})", TABLE)
    for backend in ("numba", "torch"):
        assert print_expr(make_printer(backend), expr)


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "function '__import__' is not allowed"),
    ("__import__('os').system('ls')", "forbidden call of"),
    ("x.real", "attribute access 'x.real'"),
    ("().__class__", "attribute access"),
    ("x[0]", r"subscript 'x\[0\]'"),
    ("lambda: 1", "lambda"),
    ("'abc'", "forbidden constant \"'abc'\""),
    ("1j * x", "forbidden constant '1j'"),
    ("True * x", "forbidden constant 'True'"),
    ("x if y else 1", "conditional expression"),
    ("x < 1", "comparison"),
    ("x ^ 2", r"forbidden operator \^ \(use \*\* for powers\)"),
    ("x // 2", "forbidden operator //"),
    ("x % 2", "forbidden operator %"),
    ("[x]", "list"),
    ("gamma(x)", "function 'gamma' is not allowed"),
    ("sin(x, y)", "sin takes 1 argument, got 2"),
    ("sin(x=1)", "keyword arguments"),
    ("sin", "must be called"),
    ("k * x", "unbound symbol 'k'"),
    ("9**9**9", "too large to evaluate"),
    ("x / 0", "division by zero"),
    ("-x +* 2", "syntax error at column"),
    ("", "expected an expression"),
    ("(x := 2)", "assignment"),
])
def test_forbidden_constructs_name_the_token(text, message):
    with pytest.raises(ss.SDESpecError, match=message):
        parse_expression(text, TABLE, "drift[0]")


def _no_eval(*args, **kwargs):
    raise AssertionError("eval/sympify called on spec text")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="xyta0123456789+-*/() .^_[]'\"sincoexp,=<>lambd:", max_size=30))
def test_arbitrary_text_never_reaches_eval(text):
    """Random text either parses to a SymPy expression or raises SDESpecError, and never calls
    eval, exec or sympify on the text."""
    saved = builtins.eval, builtins.exec, sp.sympify
    builtins.eval = builtins.exec = _no_eval
    sp.sympify = _no_eval  # parse_expression builds the tree itself; sp.sympify is not used on text
    try:
        try:
            result = parse_expression(text, TABLE)
        except ss.SDESpecError:
            return
    finally:
        builtins.eval, builtins.exec, sp.sympify = saved
    assert isinstance(result, sp.Basic)
    assert result.free_symbols <= set(TABLE.values())


def test_toml_schema(tmp_path):
    (tmp_path / "mine.toml").write_text(MINE_TOML)
    sde = sde_from_toml(tmp_path / "mine.toml")
    assert sde.name == "mine" and (sde.m, sde.d) == (2, 2)
    assert list(sde.drift) == [-x**3 + a * y, -y - sp.sin(x)]
    assert sde.diffusion == sp.Matrix([[1, 0], [0, sp.sqrt(1 + t)]])
    assert sde.params == {a: sp.Float(0.5)}
    scalar = MINE_TOML.replace('[["1", "0"], ["0", "sqrt(1 + t)"]]', '"2"').replace('name = "mine"\n', "")
    (tmp_path / "other.toml").write_text(scalar)
    other = sde_from_toml(tmp_path / "other.toml")
    assert other.diffusion == 2 * sp.eye(2) and other.name == "other"  # default name: the file stem


@pytest.mark.parametrize("name", sorted(ss.library.BUILTINS) + sorted(FACTORIES))
def test_to_toml_round_trip(tmp_path, name):
    sde = (ss.library.BUILTINS.get(name) or FACTORIES[name])()
    path = tmp_path / "sde.toml"
    path.write_text(to_toml(sde))
    back = sde_from_toml(path)
    assert (back.name, back.T, back.state, back.time) == (sde.name, sde.T, sde.state, sde.time)
    assert sp.simplify(back.drift - sde.drift) == sp.zeros(sde.m, 1)
    assert sp.simplify(back.diffusion - sde.diffusion) == sp.zeros(sde.m, sde.d)
    assert {k: float(v) for k, v in back.params.items()} == pytest.approx({k: float(v) for k, v in sde.params.items()})


@pytest.mark.parametrize("body, message", [
    ('state = ["x"]\ndrift = ["-x"]\ndiffusion = "1"\ncolour = "red"', "unknown key 'colour'"),
    ('state = ["x"]\ndiffusion = "1"', "missing key 'drift'"),
    ('state = ["x", "x"]\ndrift = ["-x", "-x"]\ndiffusion = "1"', "repeated: x"),
    ('state = ["sin"]\ndrift = ["-sin"]\ndiffusion = "1"', "'sin' is the name of a function"),
    ('state = ["x-1"]\ndrift = ["-x"]\ndiffusion = "1"', "'x-1' is not a valid name"),
    ('state = ["x"]\ndrift = ["-x"]\ndiffusion = "1"\nparams = 3', "params: expected a table"),
    ('state = ["x"]\ndrift = ["-x"]\ndiffusion = "1"\nparams = { k = "big" }', r"params\['k'\]: expected a real number"),
    ('state = ["x"]\ndrift = ["-x", "-x"]\ndiffusion = "1"', "drift: expected 1 expressions"),
    ('state = ["x"]\ndrift = ["-x"]\ndiffusion = [["1"], "0"]', "diffusion: expected a scalar string or a list of rows"),
    ('state = ["x"\ndrift = ["-x"]', "not valid TOML"),
])
def test_bad_toml_specs(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ss.SDESpecError, match=message):
        sde_from_toml(path)


def test_load_spec_forms(tmp_path):
    assert ss.load_spec("cubic").name == "cubic"
    (tmp_path / "mine.toml").write_text(MINE_TOML)
    assert ss.load_spec(str(tmp_path / "mine.toml")).name == "mine"
    (tmp_path / "user.py").write_text(
        "import sympy as sp, symscore as ss\n"
        "x, t = sp.symbols('x t')\n"
        "SDE = ss.SDE([-x**3], 1, [x], t, name='user')\n"
        "def make():\n    return ss.SDE([-x], 2, [x], t, name='made')\n"
        "NOT_AN_SDE = 3\n")
    assert ss.load_spec(f"{tmp_path / 'user.py'}:SDE").name == "user"
    assert ss.load_spec(f"{tmp_path / 'user.py'}:make").name == "made"
    sde = ss.library.vp()
    assert ss.load_spec(sde) is sde


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown SDE 'nope'"),
    ("missing.toml", "no such file"),
    ("missing.py:SDE", "no such file 'missing.py'"),
    ("{dir}/user.py:OTHER", "has no object 'OTHER'"),
    ("{dir}/user.py:NOT_AN_SDE", "is a int, expected"),
    ("{dir}/broken.py:SDE", "importing .*broken.py failed: SyntaxError"),
])
def test_bad_spec_strings(tmp_path, spec, message):
    (tmp_path / "user.py").write_text("NOT_AN_SDE = 3\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    with pytest.raises(ss.SDESpecError, match=message):
        ss.load_spec(spec.format(dir=tmp_path))
