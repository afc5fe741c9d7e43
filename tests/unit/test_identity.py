"""Identifier normalisation and hashing (streams.pipeline.identity)."""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat

from streams.pipeline import phone
from streams.pipeline.identity import (
    IdentityProfile,
    identifier,
    is_sha256_hex,
    normalize_email,
    normalize_name,
    normalize_phone,
    phone_region,
    sha256_hex,
)

# sha256("test@example.com"), computed once and pasted; re-verified with hashlib below.
TEST_AT_EXAMPLE_SHA256 = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"

HASHED = IdentityProfile()
PLAIN = IdentityProfile(hash=False)
PLAIN_DIGITS = IdentityProfile(hash=False, phone_format="digits")
PLAIN_GMAIL = IdentityProfile(hash=False, fold_gmail=True)
HASHED_GMAIL = IdentityProfile(fold_gmail=True)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- hashing


def test_known_digest_literal() -> None:
    assert sha256_hex("test@example.com") == TEST_AT_EXAMPLE_SHA256
    assert hashlib.sha256(b"test@example.com").hexdigest() == TEST_AT_EXAMPLE_SHA256
    assert identifier("email", "  TEST@example.COM ", HASHED) == TEST_AT_EXAMPLE_SHA256


@pytest.mark.parametrize(
    "value, expected",
    [
        (TEST_AT_EXAMPLE_SHA256, True),
        (TEST_AT_EXAMPLE_SHA256.upper(), True),
        ("0" * 64, True),
        ("F" * 64, True),
        (TEST_AT_EXAMPLE_SHA256[:-1], False),  # 63 chars
        (TEST_AT_EXAMPLE_SHA256 + "0", False),  # 65 chars
        ("g" * 64, False),
        (" " + TEST_AT_EXAMPLE_SHA256[1:], False),
        ("", False),
        ("０" * 64, False),  # full-width digits are not hex
    ],
)
def test_is_sha256_hex(value: str, expected: bool) -> None:
    assert is_sha256_hex(value) is expected


def test_sha256_hex_is_utf8_lowercase_hex() -> None:
    assert sha256_hex("müller") == hashlib.sha256("müller".encode()).hexdigest()
    assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    "value, fold_gmail, expected",
    [
        # Google Enhanced Conversions / Customer Match: trim + lowercase
        (" John.Doe@Example.com ", False, "john.doe@example.com"),
        # Meta Conversions API: lowercase
        ("John_Smith@gmail.com", False, "john_smith@gmail.com"),
        ("John_Smith@gmail.com", True, "john_smith@gmail.com"),
        # Gmail folding: dots and +tag removed, googlemail.com -> gmail.com
        ("jane.doe+promo@gmail.com", False, "jane.doe+promo@gmail.com"),
        ("jane.doe+promo@gmail.com", True, "janedoe@gmail.com"),
        ("Jane.Doe+Promo@GoogleMail.com", True, "janedoe@gmail.com"),
        ("j.a.n.e@googlemail.com", True, "jane@gmail.com"),
        ("jane.doe+promo@example.com", True, "jane.doe+promo@example.com"),  # other domains kept
        ("jane.doe@gmail.com.au", True, "jane.doe@gmail.com.au"),
        ("+promo@gmail.com", True, None),  # folds to an empty local part
        ("+promo@gmail.com", False, "+promo@gmail.com"),
        # whitespace
        ("\tjohn@example.com\n", False, "john@example.com"),
        ("\ufeffjohn@example.com\u200b", False, "john@example.com"),
        ("john doe@example.com", False, None),
        ("john@exa mple.com", False, None),
        ("john\u00a0doe@example.com", False, None),  # no-break space inside
        ("john\tdoe@example.com", False, None),
        # unicode: lowercase + NFC
        ("ÄRGER@BÜCHER.DE", False, "ärger@bücher.de"),
        ("A\u0308rger@example.de", False, "\u00e4rger@example.de"),  # NFD -> NFC
        # not plausibly an email
        ("", False, None),
        ("   ", False, None),
        ("john.example.com", False, None),
        ("@example.com", False, None),
        ("john@", False, None),
        ("john@@example.com", False, None),
        ("a@b@example.com", False, None),
        ("john@localhost", False, None),
        ("john@.example.com", False, None),
        ("john@example.com.", False, None),
        ("john@example..com", False, None),
    ],
)
def test_normalize_email(value: str, fold_gmail: bool, expected: str | None) -> None:
    assert normalize_email(value, fold_gmail=fold_gmail) == expected


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    "value, region, expected",
    [
        # Google's example
        ("+1 (800) 555-0100", None, "+18005550100"),
        ("+1 (800) 555-0100", "DE", "+18005550100"),  # explicit country code beats the region
        # Meta's example, US national format
        ("(650)555-1212", "US", "+16505551212"),
        ("1(650)555-1212", "US", "+16505551212"),
        ("650.555.1212", "us", "+16505551212"),  # region in any case
        # national formats with a default region
        ("030 1234567", "DE", "+49301234567"),
        ("030/123 45 67", "DE", "+49301234567"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("01 23 45 67 89", "FR", "+33123456789"),
        ("01.23.45.67.89", "FR", "+33123456789"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        # national format without a region cannot be parsed
        ("030 1234567", None, None),
        ("030 1234567", "XX", None),
        # "00" international prefix, with and without a region
        ("0049 30 1234567", "DE", "+49301234567"),
        ("0049 30 1234567", None, "+49301234567"),
        ("0049 30 1234567", "US", "+49301234567"),  # US dials 011, "00" still means international
        ("00 44 20 7946 0958", "FR", "+442079460958"),
        ("(0049) 30 1234567", None, "+49301234567"),
        ("011 49 30 1234567", "US", "+49301234567"),  # the region's own IDD
        ("0011 49 30 1234567", "AU", "+49301234567"),  # AU IDD "0011" is not "00" + "11"
        # "(0)" trunk prefix after the country code, dots, dashes
        ("+49 (0)30 1234567", None, "+49301234567"),
        ("+44 (0) 20 7946 0958", None, "+442079460958"),
        ("+49-30-123.45.67", None, "+49301234567"),
        ("+490301234567", None, "+49301234567"),  # national prefix after the country code is dropped
        # unicode digits
        ("+４９ ３０ １２３４５６７", None, "+49301234567"),  # full-width
        ("＋４９３０１２３４５６７", None, "+49301234567"),  # full-width plus
        ("００４９ ３０ １２３４５６７", None, "+49301234567"),
        ("+٤٩٣٠١٢٣٤٥٦٧", None, "+49301234567"),  # Arabic-Indic
        ("０３０ １２３４５６７", "DE", "+49301234567"),
        # already E.164 (fast path)
        ("+49301234567", None, "+49301234567"),
        ("+18005550100", None, "+18005550100"),
        ("+390612345678", None, "+390612345678"),  # Italian leading zero kept
        ("+447700900123", None, "+447700900123"),  # possible, though not a valid UK range
        ("+80012345678", None, "+80012345678"),  # non-geographic, still possible
        (" +49301234567 ", None, "+49301234567"),
        # extensions are dropped
        ("+1 800 555 0100 ext. 12", None, "+18005550100"),
        # vanity numbers
        ("1-800-FLOWERS", "US", "+18003569377"),
        # invalid / impossible
        ("", None, None),
        ("   ", "DE", None),
        ("abc", "DE", None),
        ("12", None, None),
        ("12", "DE", None),  # is_possible_number says True (IS_POSSIBLE_LOCAL_ONLY): rejected
        ("555-0100", "US", None),  # 7-digit local number without area code (LOCAL_ONLY)
        ("+1 555", None, None),  # too short
        ("+4930123456789012345", None, None),  # too long
        ("+999123456", None, None),  # unassigned calling code
        ("+0049301234567", None, None),
        ("555-0100-555-0100-555", "US", None),
    ],
)
def test_normalize_phone(value: str, region: str | None, expected: str | None) -> None:
    assert normalize_phone(value, region) == expected
    digits = normalize_phone(value, region, "digits")
    assert digits == (None if expected is None else expected[1:])


def test_normalize_phone_meta_digits_example() -> None:
    assert normalize_phone("(650)555-1212", "US", fmt="digits") == "16505551212"


def test_normalize_phone_unknown_format() -> None:
    assert normalize_phone("+49301234567", None, "national") is None


def _oracle(value: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _reference_input(value: str, region: str | None) -> str:
    """`value` as phonenumbers should see it by normalize_phone's documented rule, worked out here
    from the raw input (not by the implementation's preparation): a leading "00" (spaces, dots or
    dashes between and after the zeros; full-width and other Unicode digits count) is the
    international prefix, rewritten to "+", unless the region's own international prefix matches
    the number (AU "0011", KR "001", ...). Everything else is left to phonenumbers."""
    text = unicodedata.normalize("NFKC", value)
    digits = "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())
    i = 0
    while i < len(text) and (text[i].isspace() or text[i] == "(" or text[i] in "\u200b\u200c\u200d\u2060\ufeff"):
        i += 1
    zeros = 0
    while i < len(text) and zeros < 2:
        if text[i].isdecimal() and unicodedata.decimal(text[i]) == 0:
            zeros += 1
        elif not (zeros == 1 and (text[i].isspace() or text[i] in ".-")):
            return value
        i += 1
    while i < len(text) and (text[i].isspace() or text[i] in ".-"):
        i += 1
    if zeros < 2 or i == len(text) or not (text[i].isdecimal() and unicodedata.decimal(text[i]) > 0):
        return value
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    idd = metadata.international_prefix if metadata is not None else None
    if idd and re.match(idd, digits):
        return value  # the region's own prefix: phonenumbers reads it as such
    return "+" + text[i:]


def _e164_samples() -> list[str]:
    samples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(12):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                samples.append(phonenumbers.format_number(example, PhoneNumberFormat.E164))
    rng = random.Random(20240601)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for _ in range(10000):
        nsn = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))
        samples.append(f"+{rng.choice(codes)}{'0' if rng.random() < 0.3 else ''}{nsn}")
    return samples


def _formatted(e164: str, rng: random.Random) -> str:
    out = ["+"]
    for digit in e164[1:]:
        out.append(digit)
        if rng.random() < 0.3:
            out.append(rng.choice([" ", "-", ".", " (", ") ", "  ", " - "]))
    return "".join(out).strip()


def test_e164_fast_path_matches_phonenumbers() -> None:
    """Every '+digits' input gives exactly what phonenumbers.parse + possible + format(E164) gives."""
    mismatches = [(s, normalize_phone(s, None), _oracle(s, None)) for s in _e164_samples()]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert mismatches == []


def test_formatted_international_fast_path_matches_phonenumbers() -> None:
    """'+49 30 123-45.67', '+1 (650) 555-1212', ... as well."""
    rng = random.Random(7)
    samples = [_formatted(s, rng) for s in _e164_samples()[:5000]]
    samples += ["+44 (0) 20 7946 0958", "+49 (0)30 1234567", "+1 (650) 555-1212", "+39 (06) 1234 5678"]
    for region in (None, "DE", "US"):
        mismatches = [(s, normalize_phone(s, region), _oracle(s, region)) for s in samples]
        mismatches = [m for m in mismatches if m[1] != m[2]]
        assert mismatches == []


def _national_samples(rng: random.Random) -> list[tuple[str, str]]:
    """(number in national format, region): every region's example numbers as phonenumbers formats
    them, and random digit strings with and without the region's national prefix, punctuated."""
    samples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(12):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                samples.append((phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL), region))
        prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or ""
        for _ in range(40):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
            lead = rng.choice(["", "0", prefix, prefix])
            samples.append((_formatted("+" + lead + digits, rng)[1:].strip(), region))
    samples += [("(030) 123-45.67", "DE"), ("0612345678", "FR"), ("07700 900123", "GB"), ("1 415 555 0100", "US")]
    return samples


def test_national_fast_path_matches_phonenumbers() -> None:
    """National-format input gives exactly what phonenumbers.parse + possible + format(E164) gives,
    for every supported region; most of it without the full parser."""
    samples = _national_samples(random.Random(20261123))
    # the oracle sees the input after the deliberate "00" -> "+" rewrite (see test_normalize_phone)
    mismatches = [(s, r, normalize_phone(s, r), _oracle(_reference_input(s, r), r)) for s, r in samples]
    mismatches = [m for m in mismatches if m[2] != m[3]]
    assert mismatches == []
    fast = sum(phone._fast_national(s, r) is not False for s, r in samples)
    assert fast > 0.6 * len(samples)


def test_phone_without_plus_or_region_matches_phonenumbers() -> None:
    """No region: only input with a plus sign somewhere can parse (the shortcut for the rest)."""
    samples = [s for s, _ in _national_samples(random.Random(5))[::3]]
    samples += ["Tel: +49 30 1234567", "tel:+49-30-1234567", "call 0049 30 1234567", "\uff0b49 30 1234567", "abc"]
    mismatches = [(s, normalize_phone(s, None), _oracle(_reference_input(s, None), None)) for s in samples]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert mismatches == []
    assert normalize_phone("Tel: +49 30 1234567", None) == "+49301234567"


@pytest.mark.parametrize(
    "value, region, expected",
    [
        ("+49301234567", None, "DE"),
        ("+1 (800) 555-0100", None, "US"),
        ("+1 242 555 0100", None, "BS"),  # shared +1: the region comes from the area code
        ("+1 416 555 0100", None, "CA"),
        ("+44 20 7946 0958", None, "GB"),
        ("+44 1481 712345", None, "GG"),  # Guernsey shares +44
        ("+358 18 12345", None, "AX"),  # Åland shares +358
        ("+39 06 1234 5678", None, "IT"),
        ("0049 30 1234567", None, "DE"),
        ("0033 1 23 45 67 89", "DE", "FR"),
        ("030 1234567", "DE", "DE"),
        ("030 1234567", None, None),  # national format without a region: cannot tell
        ("+447700900123", None, None),  # possible but not valid, and +44 has several regions
        ("+800 1234 5678", None, None),  # non-geographic
        ("+247 62889", None, "AC"),  # phonenumbers' non-ISO region (Ascension)
        ("+383 44 123 456", None, "XK"),  # phonenumbers' non-ISO region (Kosovo)
        ("not a phone", None, None),
        ("", "DE", None),
    ],
)
def test_phone_region(value: str, region: str | None, expected: str | None) -> None:
    assert phone_region(value, region) == expected


# --------------------------------------------------------------------------- name


@pytest.mark.parametrize(
    "value, expected",
    [
        ("John", "john"),
        ("  Mary Ann  ", "mary ann"),
        ("MÜLLER", "müller"),
        ("ÄNNE", "änne"),
        ("Jose\u0301", "jos\u00e9"),  # NFD -> NFC
        ("Jos\u00e9", "jos\u00e9"),
        ("O'Brien", "o'brien"),
        ("", None),
        ("   ", None),
        ("\u200b", None),
    ],
)
def test_normalize_name(value: str, expected: str | None) -> None:
    assert normalize_name(value) == expected
    if expected is not None:
        assert unicodedata.is_normalized("NFC", expected)


def test_normalize_name_keep_case() -> None:
    assert normalize_name("  Jose\u0301 ", lowercase=False) == "Jos\u00e9"


# --------------------------------------------------------------------------- identifier


@pytest.mark.parametrize(
    "kind, value, profile, region, expected",
    [
        # hashing of the normalised value
        ("email", " John.Doe@Example.com ", HASHED, None, _h("john.doe@example.com")),
        ("email", "John_Smith@gmail.com", HASHED, None, _h("john_smith@gmail.com")),
        ("email", "jane.doe+promo@gmail.com", HASHED_GMAIL, None, _h("janedoe@gmail.com")),
        ("phone", "+1 (800) 555-0100", HASHED, None, _h("+18005550100")),
        ("phone", "(650)555-1212", IdentityProfile(phone_format="digits"), "US", _h("16505551212")),
        ("name", " MÜLLER ", HASHED, None, _h("müller")),
        ("name", "Jose\u0301", HASHED, None, _h("jos\u00e9")),
        ("id", "  CRM-42  ", HASHED, None, _h("CRM-42")),
        # plaintext
        ("email", " John.Doe@Example.com ", PLAIN, None, "john.doe@example.com"),
        ("email", "jane.doe+promo@gmail.com", PLAIN_GMAIL, None, "janedoe@gmail.com"),
        ("phone", "030 1234567", PLAIN, "DE", "+49301234567"),
        ("phone", "030 1234567", PLAIN_DIGITS, "DE", "49301234567"),
        ("phone", "020 7946 0958", PLAIN_DIGITS, "GB", "442079460958"),
        ("name", " MÜLLER ", PLAIN, None, "müller"),
        ("name", " MÜLLER ", IdentityProfile(hash=False, lowercase_names=False), None, "MÜLLER"),
        ("id", "  CRM-42  ", PLAIN, None, "CRM-42"),
        # pre-hashed values: lowered, never hashed again, whatever the kind/profile
        ("email", TEST_AT_EXAMPLE_SHA256.upper(), HASHED, None, TEST_AT_EXAMPLE_SHA256),
        ("phone", TEST_AT_EXAMPLE_SHA256.upper(), HASHED, "DE", TEST_AT_EXAMPLE_SHA256),
        ("name", f"  {TEST_AT_EXAMPLE_SHA256.upper()} ", HASHED, None, TEST_AT_EXAMPLE_SHA256),
        ("id", TEST_AT_EXAMPLE_SHA256.upper(), HASHED, None, TEST_AT_EXAMPLE_SHA256),
        ("email", TEST_AT_EXAMPLE_SHA256, PLAIN, None, TEST_AT_EXAMPLE_SHA256),
        # invalid / empty -> None
        ("email", "not-an-email", HASHED, None, None),
        ("email", "", HASHED, None, None),
        ("phone", "030 1234567", HASHED, None, None),
        ("phone", "12", HASHED, "DE", None),
        ("name", "   ", HASHED, None, None),
        ("id", "   ", HASHED, None, None),
        ("id", "", PLAIN, None, None),
        ("unknown", "x", HASHED, None, None),
    ],
)
def test_identifier(kind: str, value: str, profile: IdentityProfile, region: str | None, expected: str | None) -> None:
    assert identifier(kind, value, profile, region) == expected  # type: ignore[arg-type]


def test_identifier_hash_is_of_normalised_plaintext() -> None:
    for kind, value, region in [
        ("email", " John.Doe@Example.com ", None),
        ("phone", "01 23 45 67 89", "FR"),
        ("name", "ÄNNE", None),
    ]:
        plain = identifier(kind, value, PLAIN, region)  # type: ignore[arg-type]
        assert plain is not None
        assert identifier(kind, value, HASHED, region) == sha256_hex(plain)  # type: ignore[arg-type]


def test_identifier_is_idempotent_on_its_own_output() -> None:
    digest = identifier("email", "john@example.com", HASHED)
    assert digest is not None
    assert identifier("email", digest, HASHED) == digest
    assert identifier("email", digest.upper(), HASHED) == digest


def test_bad_types_return_none() -> None:
    assert normalize_email(None) is None  # type: ignore[arg-type]
    assert normalize_phone(None, "DE") is None  # type: ignore[arg-type]
    assert normalize_name(42) is None  # type: ignore[arg-type]
    assert identifier("email", None, HASHED) is None  # type: ignore[arg-type]


def test_profile_is_hashable_and_frozen() -> None:
    assert hash(IdentityProfile()) == hash(IdentityProfile())
    assert IdentityProfile() == IdentityProfile(hash=True, phone_format="e164", fold_gmail=False)
    with pytest.raises(AttributeError):
        IdentityProfile().hash = False  # type: ignore[misc]


def test_profile_keys_are_distinct_and_keep_cached_answers_apart() -> None:
    import itertools

    profiles = [
        IdentityProfile(hash=h, phone_format=f, fold_gmail=g, lowercase_names=n)  # type: ignore[arg-type]
        for h, f, g, n in itertools.product([True, False], ["e164", "digits"], [True, False], [True, False])
    ]
    assert len({p.key for p in profiles}) == len(profiles)
    # the cache is keyed by profile: alternating profiles never returns the other one's answer
    for _ in range(2):
        assert identifier("email", "J.Doe+x@GMail.com", PLAIN) == "j.doe+x@gmail.com"
        assert identifier("email", "J.Doe+x@GMail.com", PLAIN_GMAIL) == "jdoe@gmail.com"
        assert identifier("phone", "+49 30 1234567", PLAIN_DIGITS, None) == "49301234567"
        assert identifier("phone", "+49 30 1234567", PLAIN, None) == "+49301234567"
