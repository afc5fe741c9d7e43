"""The native phone core (`streams._native.PhoneTables`) against its reference, `streams.pipeline.phone`.

Every native decision must equal the reference's `e164` / `region_of_e164`; what the native side
hands back (False) the reference decides. The corpus is deterministic: every supported region's
example numbers in many spellings, random digit strings, the sample factory's phones and
hand-picked edge cases; the shares the native side decides are asserted so that handing everything
back cannot pass.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberFormat

from streams import native_data
from streams.dev.samples import SampleFactory
from streams.pipeline import phone
from tests.unit.native_support import require_extension

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SHARED_CODES = sorted(code for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items() if len(regions) > 1)
PUNCTUATION = [" ", "-", ".", " (", ") ", "  ", " - ", "(", ")"]
PY_SPACE = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"

Case = tuple[str, str | None]


def _phone_tables_class() -> Any:
    return require_extension().PhoneTables


@pytest.fixture(scope="module")
def tables() -> Any:
    return _phone_tables_class()(native_data.phone_tables())


class NeedsParser(Exception):
    """The reference reached phonenumbers.parse: the native side must hand such input back."""


def _no_parser(*args: object, **kwargs: object) -> None:
    raise NeedsParser


@pytest.fixture
def without_parser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The reference with phonenumbers.parse raising NeedsParser, its caches emptied first (an
    exception is never cached, so every cached answer came from a fast path) and after."""
    monkeypatch.setattr(phonenumbers, "parse", _no_parser)
    phone._e164.cache_clear()
    phone._e164_plus.cache_clear()
    yield
    phone._e164.cache_clear()
    phone._e164_plus.cache_clear()


class Differential:
    """Runs cases through both sides (the reference without its parser: see `without_parser`):
    the native side must decide exactly what the reference decides without phonenumbers.parse,
    and the same way."""

    def __init__(self, tables: Any) -> None:
        self.tables = tables
        self.cases = self.decided = 0
        self.mismatches: list[tuple[str, str | None, object, object]] = []
        self.numbers: set[str] = set()

    def run(self, cases: Iterable[Case]) -> Differential:
        for value, region in cases:
            self.cases += 1
            got = self.tables.e164(value, region)
            try:
                want: object = phone.e164(value, region)
            except NeedsParser:
                want = False
            if got is not False:
                self.decided += 1
            if got != want or type(got) is not type(want):
                self.mismatches.append((value, region, got, want))
            elif isinstance(got, str):
                self.numbers.add(got)
        return self

    @property
    def share(self) -> float:
        return self.decided / self.cases


def _regions_of(tables: Any, numbers: Iterable[str]) -> tuple[int, int, list[tuple[str, object, object]]]:
    """(numbers, native decisions, disagreements) of region_of_e164 over e164 results."""
    count = decided = 0
    mismatches: list[tuple[str, object, object]] = []
    for number in numbers:
        count += 1
        got = tables.region_of_e164(number)
        if got is False:
            continue
        decided += 1
        want = phone.region_of_e164(number)
        if got != want:
            mismatches.append((number, got, want))
    return count, decided, mismatches


# --------------------------------------------------------------------------- corpus


def _examples() -> Iterator[tuple[str | None, PhoneNumber]]:
    """Every supported region's example number of every number type, and the non-geographic ones."""
    for region in REGIONS:
        for number_type in range(11):  # FIXED_LINE .. VOICEMAIL
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                yield region, example
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            yield None, example


def _punctuate(text: str, rng: random.Random) -> str:
    out = []
    for ch in text:
        out.append(ch)
        if ch.isdigit() and rng.random() < 0.3:
            out.append(rng.choice(PUNCTUATION))
    return "".join(out).strip()


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _own_idd(region: str | None) -> str | None:
    """The international prefix a caller in `region` dials, when the metadata spells one out."""
    metadata = PhoneMetadata.metadata_for_region(region) if region else None
    if metadata is None:
        return None
    if metadata.preferred_international_prefix:
        return metadata.preferred_international_prefix
    idd = metadata.international_prefix or ""
    return idd if idd.isdigit() else None


def _spellings(region: str | None, number: PhoneNumber, rng: random.Random) -> list[str]:
    """One number in the spellings input arrives in."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    nsn = phonenumbers.national_significant_number(number)
    code = str(number.country_code)
    out = [e164, intl, national, nsn, _punctuate(e164, rng), _punctuate(national, rng), _punctuate(intl, rng)]
    out += [f"00{code}{nsn}", f"00 {code} {nsn}", f"(00{code}) {_punctuate(nsn, rng)}", f"0.0-{code}{nsn}", f"0 0{code}{nsn}"]
    idd = _own_idd(region)
    if idd is not None:
        out += [f"{idd}{code}{nsn}", f"{idd} {code} {_punctuate(nsn, rng)}"]
    cut = rng.randint(1, 3)
    extra = _digits(rng, rng.randint(1, 3))
    out += [e164[:-cut], e164 + extra, national[:-cut], national + extra, nsn[:-cut], nsn + extra, intl + extra]
    out += [f"+{code} 0{nsn}", f"+{code} (0) {nsn}", f"0{nsn}", f"+{code}{code}{nsn}"]
    for i in rng.sample(range(len(out)), 3):
        out.append(rng.choice(PY_SPACE) + out[i] + "".join(rng.choices(PY_SPACE, k=rng.randint(0, 2))))
    return out


def _example_cases(rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    for region, number in _examples():
        other = rng.choice(REGIONS)
        for text in _spellings(region, number, rng):
            cases += [(text, None), (text, region), (text, other)]
    return cases


def _random_cases(rng: random.Random, n: int) -> list[Case]:
    """Random digit strings behind the prefixes that steer the fast paths, punctuated or not."""
    leads = ["", "", "+", "+", "00", "0", "(0", "+0", "0 0", "( 00 ", "011", "0011", "001", "8", "1", "(", "++", "0-0."]
    cases: list[Case] = []
    for _ in range(n):
        text = rng.choice(leads) + _digits(rng, rng.randint(0, 19))
        if rng.random() < 0.4:
            text = _punctuate(text, rng)
        if rng.random() < 0.1:
            text = rng.choice(PY_SPACE) + text + rng.choice(["", " ", "\n"])
        region = rng.choice([None, None, rng.choice(REGIONS), rng.choice(REGIONS), "XX"])
        cases.append((text, region))
    return cases


def _shared_code_numbers(rng: random.Random, n: int) -> list[Case]:
    """'+<code><digits>' under the calling codes several regions share: valid or not."""
    lengths = {code: sorted(phone._calling_code(code).possible_lengths) for code in SHARED_CODES}
    cases: list[Case] = []
    for _ in range(n):
        code = rng.choice(SHARED_CODES)
        size = rng.choice(lengths[code]) if rng.random() < 0.8 else rng.randint(2, 14)
        cases.append((f"+{code}{_digits(rng, size)}", None))
    # each region's example numbers with their tails replaced: its leading digits and number types
    for _, number in _examples():
        if number.country_code in lengths:
            nsn = phonenumbers.national_significant_number(number)
            for _ in range(20):
                keep = rng.randint(1, len(nsn))
                cases.append((f"+{number.country_code}{nsn[:keep]}{_digits(rng, len(nsn) - keep + rng.randint(-1, 1))}", None))
    return cases


def _sample_factory_phones(n: int) -> list[Case]:
    """The sample factory's phones with their region (the locale's country)."""
    factory = SampleFactory(seed=20260301)
    cases: list[Case] = []
    while len(cases) < n:
        customer, context = factory.customer()
        if customer["phone"] is not None:
            cases.append((customer["phone"], context["locale"][-2:]))
    return cases


EDGE_CASES: list[Case] = [
    ("", None), ("", "DE"), (" ", "DE"), ("+", None), ("+", "DE"), ("00", "DE"), ("0", "DE"), ("(", "DE"),
    ("+4930123456", None), ("+4930123456", "US"), ("+49 30 1234567", None), ("+49-30-123.45.67", "DE"),
    ("030 1234567", "DE"), ("030 1234567", None), ("(030) 123-45.67", "DE"), ("((030) 1234567", "DE"),
    ("0049 30 1234567", None), ("0049 30 1234567", "US"), ("( 00 49) 30 1234567", "FR"), ("00 049 30 1234567", None),
    ("0011 61 2 9876 5432", "AU"), ("0011 61 2 9876 5432", None), ("001 82 2 1234 5678", "KR"), ("011 49 30 1234567", "US"),
    ("\x1c+4930123456\x1f", None), ("+4930123456\n", None), ("\t030 1234567\r", "DE"), ("+49 (0) 30 1234567", None),
    ("+44 (0) 20 7946 0958", None), ("07700 900123", "GB"), ("0612345678", "FR"), ("1 415 555 0100", "US"),
    ("(650)555-1212", "US"), ("+1 (212) 555-0123", "CA"), ("+80012345678", None), ("+8001234567", None),
    ("+49 30 1234567 ext. 12", None), ("tel:+49-30-1234567", None), ("1-800-FLOWERS", "US"), ("abc", None),
    ("12", "DE"), ("123", "DE"), ("+0049301234567", None), ("++49301234567", None), ("+1 800 FLOWERS", None),
    ("491234567890123456789", "DE"), ("+491234567890123456789", None), ("0" * 60, "DE"), ("+" + "1" * 60, None),
    ("030 1234567", "ZZ"), ("030 1234567", "XX"), ("030 1234567", "de"), ("030 1234567", "001"),
]  # fmt: skip


# --------------------------------------------------------------------------- tests


def test_the_tables_are_the_references_metadata(tables: Any) -> None:
    """phone_tables() holds what the reference's lazily built _CallingCode / _Region objects hold."""
    data = native_data.phone_tables()
    assert data["country_code_to_region_code"] == {c: list(r) for c, r in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()}
    for code, entry in data["calling_codes"].items():
        reference = phone._calling_code(code)
        prefix = reference.national_prefix.pattern if reference.national_prefix is not None else None
        assert entry == {"national_prefix_for_parsing": prefix, "possible_lengths": sorted(reference.possible_lengths)}
    assert sorted(data["regions"]) == REGIONS
    for region, entry in data["regions"].items():
        idd = phone._idd_re(region)
        assert entry["idd"] == (idd.pattern if idd is not None else None)
        info = phone._region_info(region)
        if info is None:
            assert entry["national"] is None
            continue
        assert entry["country_code"] == info.country_code
        national = entry["national"]
        assert national["national_prefix_for_parsing"] == (info.national_prefix.pattern if info.national_prefix else None)
        assert national["viable"] == (info.viable.__self__.pattern if info.viable is not None else None)  # type: ignore[attr-defined]
        assert national["possible_lengths"] == sorted(info.possible)
        assert national["local_only_lengths"] == sorted(info.local_only)
        assert national["max_length"] == info.max_length
    shared = {r for code in SHARED_CODES for r in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]}
    assert {r for r, entry in data["regions"].items() if "number_descs" in entry} == shared
    # every pattern is portable and compiles in Rust: nothing is handed back for that reason
    assert all(v is not None for v in data["calling_codes"].values())
    assert all(v is not None for v in data["regions"].values())
    assert tables.pattern_count() > 1000
    assert tables.uncompilable_patterns() == []


def test_only_syntax_both_engines_read_alike_is_passed_on() -> None:
    assert native_data._pattern("0|(\\d{3})$|1[2-9]?(?:15)") == "0|(\\d{3})$|1[2-9]?(?:15)"
    assert native_data._pattern("") is None
    for foreign in ["(?=1)0", "(1)\\1", "0*?", "0+", "\\s0", "0.", "(?P<n>0)", "a"]:
        with pytest.raises(native_data._NotPortable):
            native_data._pattern(foreign)


def test_a_pattern_rust_does_not_compile_or_a_missing_entry_hands_back() -> None:
    data = native_data.phone_tables()
    data["calling_codes"][49]["national_prefix_for_parsing"] = "0{"  # Python: a literal brace; Rust: an error
    data["calling_codes"][33] = None
    data["regions"]["GB"] = None
    data["regions"]["AU"]["idd"] = "00{"
    data["regions"]["GG"] = None  # a region under +44 that region_code_for_number may reach
    tables = _phone_tables_class()(data)
    assert tables.e164("+4930123456", None) is False
    assert tables.e164("+33 1 23 45 67 89", "DE") is False
    assert tables.e164("07700 900123", "GB") is False
    assert tables.e164("0049 30 1234567", "GB") is False  # the "00" check reads GB's prefix
    assert tables.e164("0049 30 1234567", "AU") is False
    assert tables.e164("+61 2 9876 5432", None) == "+61298765432"
    assert tables.region_of_e164("+447700900123") is False
    assert tables.region_of_e164("+12125550123") == "US"
    assert tables.uncompilable_patterns() == ["0{", "00{"]


def test_non_ascii_input_is_handed_back(tables: Any) -> None:
    for value in [
        "\uff0b49 30 1234567",
        "+49 30 \u0661\u0662\u0663\u0664\u0665\u0666\u0667",
        "\u200b+4930123456",
        "+4930123456\xa0",
    ]:
        assert tables.e164(value, None) is False
        assert tables.e164(value, "DE") is False


@pytest.mark.usefixtures("without_parser")
def test_edge_cases(tables: Any) -> None:
    run = Differential(tables).run(EDGE_CASES)
    assert run.mismatches == []
    assert tables.e164("030 1234567", "DE") == "+49301234567"
    assert tables.e164("0049 30 1234567", "US") == "+49301234567"
    assert tables.e164("030 1234567", None) is None
    assert tables.e164("0011 61 2 9876 5432", "AU") is False  # AU's own prefix: the parser


@pytest.mark.usefixtures("without_parser")
def test_example_numbers_of_every_region_in_every_spelling(tables: Any) -> None:
    rng = random.Random(20260302)
    run = Differential(tables).run(_example_cases(rng))
    assert run.mismatches[:20] == []
    assert run.cases > 100_000
    assert run.share > 0.75, run.share  # the rest needs the parser (transform rules, own IDD, ...)
    count, decided, mismatches = _regions_of(tables, sorted(run.numbers))
    assert mismatches[:20] == []
    assert count > 3000 and decided == count


@pytest.mark.usefixtures("without_parser")
def test_random_digit_strings(tables: Any) -> None:
    run = Differential(tables).run(_random_cases(random.Random(20260303), 120_000))
    assert run.mismatches[:20] == []
    assert run.share > 0.45, run.share
    count, decided, mismatches = _regions_of(tables, sorted(run.numbers))
    assert mismatches[:20] == []
    assert decided == count


@pytest.mark.usefixtures("without_parser")
def test_region_of_numbers_under_shared_calling_codes(tables: Any) -> None:
    """+1, +44, +7, +39, ...: region_code_for_number's leading digits and number types, ported."""
    run = Differential(tables).run(_shared_code_numbers(random.Random(20260304), 40_000))
    assert run.mismatches[:20] == []
    count, decided, mismatches = _regions_of(tables, sorted(run.numbers))
    assert mismatches[:20] == []
    assert count > 15_000 and decided == count
    regions = {tables.region_of_e164(n) for n in run.numbers}
    # every region phonenumbers gives an example number of (MF and EH it never gives: GP, BL, MA first)
    reachable = {phonenumbers.region_code_for_number(n) for _, n in _examples() if n.country_code in SHARED_CODES}
    assert regions >= reachable | {None} and len(reachable) > 35


@pytest.mark.usefixtures("without_parser")
def test_sample_factory_phones(tables: Any) -> None:
    """What the pipeline sees: with the record's region (identifiers) and without (country resolution)."""
    phones = _sample_factory_phones(20_000)
    run = Differential(tables).run(phones)
    assert run.mismatches == []
    assert run.share >= 0.95, run.share
    without = Differential(tables).run((value, None) for value, _ in phones)
    assert without.mismatches == []
    count, decided, mismatches = _regions_of(tables, sorted(run.numbers | without.numbers))
    assert mismatches == [] and decided == count


def test_region_of_odd_numbers(tables: Any) -> None:
    """Not e164 results: decided only where the reference answers (and then the same), else handed back."""
    for number in ["+", "+0", "+01234", "+49", "+490", "+4930123456 ", " +4930123456", "+49a", "abc", "", "+999123", "+2"]:
        got = tables.region_of_e164(number)
        try:
            want: object = phone.region_of_e164(number)
        except (ValueError, IndexError):
            want = False
        assert got is False or got == want, number
    assert tables.region_of_e164("+490") == "DE"
    assert tables.region_of_e164("+999123") is None
    assert tables.region_of_e164("+80012345678") is None  # non-geographic
    assert tables.region_of_e164("+1999") is None  # possible, valid nowhere under a shared code
