"""``{{field}}`` placeholders render from the context; every other text is sent verbatim."""

from __future__ import annotations

import pytest

from brokerflow.workflow.templates import placeholders, render

CTX = {
    "trade.login": 1001, "amount_usd": 2500.5, "customer.email": "a@b.c", "account.enable": True,
    "account.leverage": None, "request.headers.x-token": "t0k", "input.note": "hi", "_customer_id": 9,
    "flag": False, "whole": 3.0,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login {{trade.login}}", "login 1001"),
        ("{{ trade.login }} / {{trade.login}}", "1001 / 1001"),
        ("{{amount_usd}} USD", "2500.5 USD"),
        ("{{whole}}", "3.0"),
        ("to {{customer.email}}", "to a@b.c"),
        ("{{account.enable}} {{flag}}", "true false"),
        ("[{{account.leverage}}]", "[]"),
        ("{{request.headers.x-token}} {{input.note}}", "t0k hi"),
        ("no placeholders", "no placeholders"),
        ("", ""),
    ],
)
def test_render_fills_placeholders_naming_context_keys(text, expected):
    assert render(text, CTX) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"text": "High risk trade"}',
        "{trade.login}",
        "{ {trade.login} }",
        "{{unknown.field}}",
        "{{ }}",
        "{{}}",
        "{{_customer_id}}",
        "{{trade login}}",
        "{{1abc}}",
    ],
)
def test_render_leaves_non_placeholders_and_unknown_names_verbatim(text):
    assert render(text, CTX) == text


def test_render_keeps_json_around_a_placeholder():
    body = '{"login": {{trade.login}}, "note": "{x}", "nested": {"a": 1}}'
    assert render(body, CTX) == '{"login": 1001, "note": "{x}", "nested": {"a": 1}}'


def test_render_inside_triple_braces_keeps_the_outer_brace():
    assert render("{{{trade.login}}}", CTX) == "{1001}"


def test_render_does_not_re_render_substituted_values():
    assert render("{{a}}", {"a": "{{b}}", "b": "no"}) == "{{b}}"


def test_placeholders_lists_names_once_in_order():
    assert placeholders("{{b}} {{ a }} {{b}} {x} {{_hidden}} {{c.d-e}}") == ["b", "a", "c.d-e"]


def test_placeholders_of_plain_text_is_empty():
    assert placeholders('{"a": 1}') == []
