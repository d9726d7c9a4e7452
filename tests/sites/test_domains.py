"""Domain validation: normalised or refused, never passed on raw."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from sites.domains import DOMAIN_PATTERN, display_domain, normalise_domain


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Shop.Example.COM", "shop.example.com"),
        ("shop.example.com.", "shop.example.com"),
        ("  shop.example.com  ", "shop.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("shop-e2e.localhost", "shop-e2e.localhost"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_domains_are_normalised(raw, expected):
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "required"),
        ("localhost", "single_label"),
        ("*.example.com", "wildcard"),
        ("10.0.0.1", "ip"),
        ("[::1]", "ip"),
        ("shop..example.com", "invalid"),
        (".example.com", "invalid"),
        ("-shop.example.com", "invalid"),
        ("shop-.example.com", "invalid"),
        ("a" * 64 + ".example", "invalid"),
        ("shop.example.com; rm -rf /", "invalid"),
        ("shop.example.com\nHost: evil", "invalid"),
        ("`id`.example.com", "invalid"),
        ("$(id).example.com", "invalid"),
        ("shop'.example.com", "invalid"),
        ('shop".example.com', "invalid"),
        ("shop/../../etc", "invalid"),
        ("../etc/passwd", "invalid"),
        ("shop_1.example.com", "invalid"),
        ("shop.123", "ip"),
        (".".join(["a" * 60] * 5), "too_long"),
    ],
)
def test_bad_domains_are_refused_with_a_reason(raw, code):
    with pytest.raises(ValidationError) as excinfo:
        normalise_domain(raw)
    assert excinfo.value.messages, "a human message"
    assert excinfo.value.code in (code, "invalid", "invalid_label", "label_too_long")


def test_display_form_is_unicode():
    assert display_domain("xn--bcher-kva.example") == "bücher.example"


@settings(max_examples=600, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_whatever_comes_in_what_goes_out_is_safe_for_labels_paths_sql_and_argv(raw):
    try:
        domain = normalise_domain(raw)
    except ValidationError:
        return
    assert re.fullmatch(DOMAIN_PATTERN, domain)
    assert len(domain) <= 253
    assert not any(ch in domain for ch in " \t\r\n'\"`$;&|<>()\\/*")
    assert ".." not in domain and not domain.startswith(("-", "."))
    assert domain == domain.lower()
    assert normalise_domain(domain) == domain, "normalising twice changes nothing"


hostile = st.sampled_from([*list("'\"`$;&|<>(){}\\/\n\r\t *?!#%"), "..", "${IFS}", "$(id)"])
labels = st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(labels, min_size=1, max_size=3), hostile, st.integers(min_value=0, max_value=2))
def test_shell_and_path_metacharacters_are_always_refused(parts, bad, where):
    parts = [*parts, "example"]
    index = min(where, len(parts) - 1)
    parts[index] = "x" + bad + parts[index]  # inside a label (edges are merely trimmed)
    with pytest.raises(ValidationError):
        normalise_domain(".".join(parts))
