"""farm.core.signatures: GitHub's body signatures, shared tokens and bearer headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from farm.core.signatures import bearer_token, github_signature_ok, token_ok

SECRET = "It's a Secret to Everybody"
BODY = b'{"zen":"Keep it logically awesome.","hook_id":1}'


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_signature_of_the_body_with_the_secret_is_accepted() -> None:
    assert github_signature_ok(SECRET, BODY, sign(SECRET, BODY))


def test_github_signature_matches_githubs_documented_example() -> None:
    # The secret, body and signature GitHub's documentation gives for testing a check.
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature_ok(SECRET, b"Hello, World!", header)


def test_github_signature_hex_in_capitals_and_surrounding_spaces_are_accepted() -> None:
    header = sign(SECRET, BODY)
    assert github_signature_ok(SECRET, BODY, "  sha256=" + header[7:].upper() + " ")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        sign("another secret", BODY),
        "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(),
        sign(SECRET, BODY)[len("sha256=") :],  # the digest without its prefix
        "SHA256=" + sign(SECRET, BODY)[len("sha256=") :],
        sign(SECRET, BODY)[:-1],  # one digit short
        sign(SECRET, BODY) + "0",  # one digit more
        sign(SECRET, BODY)[:-1] + "g",  # not hex
        "sha256=" + "é" * 64,
    ],
    ids=[
        "missing", "empty", "no-digest", "other-secret", "sha1", "no-prefix",
        "prefix-in-capitals", "short", "long", "not-hex", "not-ascii",
    ],
)  # fmt: skip
def test_github_signature_refused(header: str | None) -> None:
    assert not github_signature_ok(SECRET, BODY, header)


def test_github_signature_of_a_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY)
    assert not github_signature_ok(SECRET, BODY.replace(b"awesome", b"awesome!"), header)


def test_github_signature_with_an_empty_secret_is_refused_even_when_it_matches() -> None:
    assert not github_signature_ok("", BODY, sign("", BODY))


def test_token_equal_to_the_secret_is_accepted() -> None:
    assert token_ok("gl-hook-secret", "gl-hook-secret")


@pytest.mark.parametrize(
    "given", [None, "", "gl-hook-secre", "gl-hook-secret ", "GL-HOOK-SECRET", "\udcff"]
)
def test_token_other_than_the_secret_is_refused(given: str | None) -> None:
    assert not token_ok("gl-hook-secret", given)


def test_token_with_no_secret_configured_is_refused() -> None:
    assert not token_ok("", "")
    assert not token_ok("", "anything")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.DEF-123", "abc.DEF-123"),
        ("bearer abc", "abc"),
        ("  BEARER   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
        ("Bearer two words", None),
        ("Bearerabc", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
