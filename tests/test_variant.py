"""ss.Variant: a frozen, validated value that chooses the weight and keys the cache (no compile here)."""
from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

import symscore as ss
from symscore.compiler import build, ir


def test_the_default_is_the_plain_target_and_equal_requests_are_equal():
    assert ss.Variant() == ss.Variant(False, False, (), None) and ss.Variant().second_order
    assert ss.Variant(drop=["RPsi", "P", "P"]).drop == ("P", "RPsi")
    assert ss.Variant(drop="P").drop == ("P",)
    assert ss.Variant(negate="R").negate == ("R",) == ss.Variant(negate=["R", "R"]).negate
    t, dt = sp.symbols("t dt")
    assert ss.Variant(covering_weight="dt + t") == ss.Variant(covering_weight=t + dt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ss.Variant().first_order_only = True


@pytest.mark.parametrize("fields, match", [
    ({"force_coupled": 1}, "force_coupled: expected True or False"),
    ({"first_order_only": "yes"}, "first_order_only: expected True or False"),
    ({"drop": ("Q",)}, "drop: expected names among"),
    ({"drop": 3}, "drop: expected a tuple"),
    ({"negate": ("Q",)}, "negate: expected names among"),
    ({"first_order_only": True, "negate": "R"}, "negate: .* first_order_only leaves out already"),
    ({"first_order_only": True, "drop": "P"}, "drop: .* first_order_only leaves out already"),
    ({"covering_weight": "t + y"}, "covering_weight: expected an expression in t"),
    ({"covering_weight": "("}, "covering_weight: expected a SymPy expression"),
])
def test_bad_fields_are_named(fields, match):
    with pytest.raises(ss.SymscoreError, match=match):
        ss.Variant(**fields)


def test_compile_takes_a_variant_only():
    with pytest.raises(ss.SymscoreError, match="variant: expected a symscore.Variant, got dict"):
        ss.compile(ss.library.ou(m=1), variant={"first_order_only": True})
    with pytest.raises(TypeError):
        ss.compile(ss.library.ou(m=1), _first_order_only=True)


def test_the_variant_and_the_form_are_part_of_the_cache_key():
    sde = ss.library.cubic(m=1)
    plain = build.module_key(sde, "numba")
    assert plain == build.module_key(sde, "numba", ss.Variant())  # deterministic
    others = {build.module_key(sde, "numba", variant) for variant in (
        ss.Variant(force_coupled=True), ss.Variant(first_order_only=True), ss.Variant(covering_weight="t"),
        ss.Variant(negate="R"))}
    assert len(others) == 4 and plain not in others
    assert build.module_key(sde, "numba", form="loop") != plain


def test_every_block_form_offers_the_protocol():
    """Printers and build tell the forms apart by ``form`` alone: both expose the same attributes."""
    der = ss.library.benes(m=2).derive()
    for form in ("unrolled", "loop"):
        (block,) = ir.build_ir(der, form=form).blocks
        assert block.form == form and block.estimated_terms > 0
        assert (block.width, block.n_noise, len(block.lanes)) == (2, 2, 1) and block.second_order
        assert isinstance(block.constants, tuple) and isinstance(block.constant_values, tuple)
        assert block.description and block.noise_lanes == ((0, 1),)
    first_order = ir.build_ir(der, variant=ss.Variant(first_order_only=True)).blocks[0]
    assert not first_order.second_order


def test_the_sign_flip_is_for_the_unrolled_form_only():
    der = ss.library.benes(m=2).derive()
    assert "wrong sign of R" in ir.build_ir(der, variant=ss.Variant(negate="R"), form="unrolled").blocks[0].description
    with pytest.raises(ss.SymscoreError, match="negate: the sign-flipped variants are built for the unrolled form"):
        ir.build_ir(der, variant=ss.Variant(negate="R"), form="loop")
