"""Domain validation: normalised or refused, never passed on raw."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from sites.domains import (
    ALLOWED_SCRIPT_MIXES,
    DOMAIN_PATTERN,
    display_domain,
    label_scripts,
    normalise_domain,
)


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


# ---- issue 9, item 15: mixed-script look-alikes ------------------------------------


CYRILLIC_A, CYRILLIC_O, GREEK_ALPHA = "\u0430", "\u043e", "\u03b1"  # look like a, o, a


@pytest.mark.parametrize(
    ("raw", "label", "scripts"),
    [
        (f"{CYRILLIC_A}pple.com", f"{CYRILLIC_A}pple", "Cyrillic and Latin"),
        ("xn--pple-43d.com", f"{CYRILLIC_A}pple", "Cyrillic and Latin"),  # the same, as ACE
        (f"p{CYRILLIC_A}ypal.example", f"p{CYRILLIC_A}ypal", "Cyrillic and Latin"),
        (f"shop.g{CYRILLIC_O * 2}gle.com", f"g{CYRILLIC_O * 2}gle", "Cyrillic and Latin"),
        (f"{GREEK_ALPHA}pple.com", f"{GREEK_ALPHA}pple", "Greek and Latin"),
        ("\u0410pple.com", f"{CYRILLIC_A}pple", "Cyrillic and Latin"),  # upper case: the same
        (f"{CYRILLIC_A}pple-\u03b2.com", f"{CYRILLIC_A}pple-\u03b2", "Cyrillic, Greek, Latin"),
    ],
)
def test_item_15_mixed_script_labels_are_refused_naming_the_label_and_scripts(raw, label, scripts):
    with pytest.raises(ValidationError) as caught:
        normalise_domain(raw)

    assert caught.value.code == "mixed_script"
    [message] = caught.value.messages
    assert f"“{label}”" in message
    assert f"mixes the {scripts} scripts" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("яндекс.рф", "xn--d1acpjx3f.xn--p1ai"),  # one script per label
        ("παράδειγμα.example", "xn--hxajbheg2az3al.example"),
        ("bücher-2.example", "xn--bcher-2-n2a.example"),  # Latin plus digits and hyphen
        ("日本語テストです.jp", "xn--88j1a3swbl3962fo4bc84j.jp"),  # Han + Katakana + Hiragana
        ("ひらがなabc.jp", "xn--abc-o73b4fvb9j.jp"),  # Latin + Hiragana (Japanese)
        ("한국abc.kr", "xn--abc-lt8lk11n.kr"),  # Latin + Hangul (Korean)
        ("中文ㄅ.cn", "xn--5ek909fo6p.cn"),  # Han + Bopomofo (Chinese)
        ("пример.shop.com", "xn--e1afmkfd.shop.com"),  # scripts differ by label: fine
    ],
)
def test_item_15_one_script_per_label_and_the_east_asian_mixes_are_accepted(raw, expected):
    assert normalise_domain(raw) == expected


def test_item_15_scripts_are_read_from_the_characters():
    assert label_scripts(f"{CYRILLIC_A}pple") == {"Cyrillic", "Latin"}
    assert label_scripts("shop-24") == {"Latin"}
    assert label_scripts("24-7") == frozenset()  # digits and hyphens belong to every script
    assert label_scripts("テスト一ー") == {"Katakana", "Han"}  # ー goes with either kana


# Letters from scripts whose mixes are refused, and from the mixes UTS #39 allows.
CYRILLIC = st.characters(min_codepoint=0x0430, max_codepoint=0x044F)
GREEK = st.characters(min_codepoint=0x03B1, max_codepoint=0x03C9)
LATIN = st.characters(min_codepoint=ord("a"), max_codepoint=ord("z"))
DIGIT_OR_HYPHEN = st.sampled_from(list("0123456789-"))
LOOKALIKE_PAIRS = st.sampled_from([(CYRILLIC, LATIN), (GREEK, LATIN), (CYRILLIC, GREEK)])


def refusal_code(domain: str) -> str | None:
    try:
        normalise_domain(domain)
    except ValidationError as exc:
        return str(exc.code)
    return None


@settings(max_examples=300, deadline=None)
@given(LOOKALIKE_PAIRS.flatmap(lambda pair: st.tuples(*pair)), st.data())
def test_item_15_any_label_mixing_two_scripts_is_refused(letters, data):
    first, second = letters
    padding = data.draw(st.lists(st.one_of(CYRILLIC, GREEK, LATIN, DIGIT_OR_HYPHEN), max_size=8))
    label = "".join(data.draw(st.permutations([first, second, *padding])))
    label = re.sub("-+", "-", label).strip("-")  # otherwise a valid label

    code = refusal_code(f"{label}.example")

    if len(label_scripts(label.lower())) > 1:
        assert code == "mixed_script", label
    else:
        assert code != "mixed_script", label


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([CYRILLIC, GREEK, LATIN]), st.data())
def test_item_15_a_label_in_one_script_is_never_refused_for_mixing(script, data):
    letters = data.draw(st.lists(st.one_of(script, DIGIT_OR_HYPHEN), min_size=1, max_size=20))
    label = re.sub("-+", "-", "".join(letters)).strip("-") or "x"

    assert refusal_code(f"{label}.example") != "mixed_script", label


def test_item_15_the_allowed_mixes_are_uts_39_highly_restrictive():
    assert frozenset({"Latin", "Han", "Hiragana", "Katakana"}) in ALLOWED_SCRIPT_MIXES
    assert not any({"Latin", "Cyrillic"} <= mix for mix in ALLOWED_SCRIPT_MIXES)
    assert not any({"Latin", "Greek"} <= mix for mix in ALLOWED_SCRIPT_MIXES)
