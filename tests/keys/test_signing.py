"""Canonical bytes, signatures and key ids: properties and one test per way a signature can fail."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.encoding import MalformedEncoding, b64url_decode, b64url_encode, canonical_bytes, kid_for
from keys.errors import BadSignature
from keys.signing import Signer, code_bytes, code_payload, sign, sign_code, split_code_signature, verify, verify_code

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=12)
objects = st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "sig"), json_values, max_size=6)

SIGNER = Signer.generate()


@given(objects)
@settings(max_examples=200)
def test_canonical_bytes_ignore_key_order_and_signature(obj):
    shuffled = dict(reversed(list(obj.items())))
    assert canonical_bytes(obj) == canonical_bytes(shuffled)
    assert canonical_bytes({**obj, "sig": {"kid": "x", "value": "y"}}) == canonical_bytes(obj)
    assert json.loads(canonical_bytes(obj)) == obj


@given(objects)
@settings(max_examples=100)
def test_sign_then_verify_round_trips(obj):
    signed = sign({**obj, "t": "test"}, SIGNER)
    verify(signed, SIGNER.private_key.public_key())
    # what travels is JSON: verification survives a round trip through text
    verify(json.loads(json.dumps(signed)), SIGNER.private_key.public_key())


@given(objects, st.text(min_size=1, max_size=8))
@settings(max_examples=100)
def test_any_change_to_a_signed_object_breaks_it(obj, key):
    signed = sign({**obj, "t": "test"}, SIGNER)
    tampered = dict(signed)
    tampered[key if key not in ("sig",) else "k"] = "tampered-value-" + str(obj.get(key))
    if canonical_bytes(tampered) == canonical_bytes(signed):
        return  # the change happened to be a no-op
    with pytest.raises(BadSignature):
        verify(tampered, SIGNER.private_key.public_key())


@given(st.binary(max_size=64))
def test_b64url_round_trip_has_no_padding(data):
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


def test_b64url_rejects_padding_and_garbage():
    with pytest.raises(MalformedEncoding):
        b64url_decode("AAAA=")
    with pytest.raises(MalformedEncoding):
        b64url_decode("A")


def test_kid_is_first_six_bytes_of_sha256_of_the_raw_key():
    raw = SIGNER.public_raw
    assert kid_for(raw) == b64url_encode(hashlib.sha256(raw).digest()[:6])
    assert len(kid_for(raw)) == 8
    with pytest.raises(MalformedEncoding):
        kid_for(raw[:31])


def test_signature_by_another_key_fails():
    signed = sign({"t": "x", "a": 1}, SIGNER)
    other = Signer.generate()
    with pytest.raises(BadSignature, match="different key"):
        verify(signed, other.private_key.public_key())


def test_forged_kid_with_wrong_key_fails():
    other = Signer.generate()
    signed = sign({"t": "x"}, other)
    signed["sig"]["kid"] = SIGNER.kid  # claims the trusted key, but the other key signed it
    with pytest.raises(BadSignature):
        verify(signed, SIGNER.private_key.public_key())


def test_missing_signature_fails():
    with pytest.raises(BadSignature, match="no signature"):
        verify({"t": "x"}, SIGNER.private_key.public_key())


def test_truncated_signature_fails():
    signed = sign({"t": "x"}, SIGNER)
    signed["sig"]["value"] = signed["sig"]["value"][:-4]
    with pytest.raises(BadSignature):
        verify(signed, SIGNER.private_key.public_key())


def test_signature_that_is_not_base64url_fails():
    signed = sign({"t": "x"}, SIGNER)
    signed["sig"]["value"] = "!!!" + signed["sig"]["value"][3:]
    with pytest.raises(BadSignature):
        verify(signed, SIGNER.private_key.public_key())


def test_code_signature_covers_every_field():
    s = sign_code(SIGNER, gtin="08936000010010", lot="L1", serial="ABC", exp="271231")
    public = SIGNER.private_key.public_key()
    verify_code(public, s, gtin="08936000010010", lot="L1", serial="ABC", exp="271231")
    for changed in ({"lot": "L2"}, {"serial": "ABD"}, {"exp": "281231"}, {"gtin": "08936000010027"},
                    {"serial": None}, {"exp": None}):
        fields = {"gtin": "08936000010010", "lot": "L1", "serial": "ABC", "exp": "271231", **changed}
        with pytest.raises(BadSignature):
            verify_code(public, s, **fields)


def test_code_payload_shapes():
    assert code_payload(gtin="1", lot="L") == {"t": "batch", "gtin": "1", "lot": "L"}
    assert code_payload(gtin="1", lot="L", serial="S", exp="260101") == {
        "t": "unit", "gtin": "1", "lot": "L", "serial": "S", "exp": "260101"}


@pytest.mark.parametrize("s", ["", "nodot", "short.sig", "toolongkid.sig", "abcdefgh."])
def test_malformed_s_parameter(s):
    with pytest.raises(BadSignature):
        split_code_signature(s)


@settings(max_examples=500)
@given(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=8),
                       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=6))
def test_flat_string_objects_take_a_shortcut_to_the_same_jcs_bytes(obj):
    """canonical_bytes() serialises flat objects of strings (code payloads) with json.dumps:
    the bytes must be exactly what the RFC 8785 library gives, controls, quotes, backslashes,
    non-Latin and astral characters included."""
    import rfc8785

    assert canonical_bytes(obj) == rfc8785.dumps({k: v for k, v in obj.items() if k != "sig"})


@settings(max_examples=500)
@given(st.text(max_size=20), st.text(max_size=20), st.none() | st.text(max_size=20), st.none() | st.text(max_size=6))
def test_code_bytes_written_out_are_the_jcs_bytes_of_the_payload(gtin, lot, serial, exp):
    """code_bytes() writes plain values out without json.dumps: byte for byte what JCS gives,
    for values that take the shortcut (GS1 character set 82) and for those that do not."""
    import rfc8785

    try:
        expected = rfc8785.dumps(code_payload(gtin=gtin, lot=lot, serial=serial, exp=exp))
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            code_bytes(gtin=gtin, lot=lot, serial=serial, exp=exp)
        return
    assert code_bytes(gtin=gtin, lot=lot, serial=serial, exp=exp) == expected


@pytest.mark.parametrize("lot", ['L"1', "L\\1", "L\n1", "Lô 1", "L 1!%&'()*+,-./:;<=>?_z"])
def test_code_bytes_of_gs1_and_other_characters(lot):
    import rfc8785

    fields = {"gtin": "08936000010010", "lot": lot, "serial": "K7M2Q9X4ZP3R", "exp": "271231"}
    assert code_bytes(**fields) == rfc8785.dumps(code_payload(**fields))
    assert code_bytes(gtin="08936000010010", lot=lot) == rfc8785.dumps(code_payload(gtin="08936000010010", lot=lot))


def test_a_lone_surrogate_is_refused_as_jcs_refuses_it():
    import rfc8785

    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_bytes({"lot": "\ud800"})


@pytest.mark.parametrize("value", [2**53, -(2**60), float("nan"), float("inf")])
def test_what_rfc8785_cannot_carry_is_a_malformed_encoding_not_a_crash(value):
    """Callers turn MalformedEncoding into a 422 (a pre-signed record, an inspection's result)."""
    with pytest.raises(MalformedEncoding):
        canonical_bytes({"t": "x", "q": value})
    assert canonical_bytes({"t": "x", "q": 2**53 - 1}) == b'{"q":9007199254740991,"t":"x"}'
