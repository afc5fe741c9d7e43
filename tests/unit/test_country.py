"""Country normalisation and enrichment (streams.pipeline.country)."""

from __future__ import annotations

import pycountry
import pytest
from iptocc import country_code as iptocc_country_code

from streams.pipeline import country as country_mod
from streams.pipeline.country import (
    ALIASES,
    CountrySources,
    alpha2_to_alpha3,
    country_from_ip,
    country_from_locale,
    format_country,
    resolve_country,
    to_alpha2,
)

# --------------------------------------------------------------------------- to_alpha2


@pytest.mark.parametrize(
    "value, expected",
    [
        # alpha-2, any case / whitespace
        ("DE", "DE"),
        ("de", "DE"),
        (" De ", "DE"),
        ("GB", "GB"),
        ("US", "US"),
        # alpha-3
        ("DEU", "DE"),
        ("deu", "DE"),
        ("USA", "US"),
        ("GBR", "GB"),
        ("\tgrc\n", "GR"),
        # numeric (zero-padded or not)
        ("276", "DE"),
        ("840", "US"),
        ("076", "BR"),
        ("76", "BR"),
        ("4", "AF"),
        # ISO short names
        ("Germany", "DE"),
        ("germany", "DE"),
        ("GERMANY", "DE"),
        ("  Germany  ", "DE"),
        ("United Kingdom", "GB"),
        ("United States", "US"),
        ("Russian Federation", "RU"),
        ("Korea, Republic of", "KR"),
        ("Bolivia, Plurinational State of", "BO"),
        ("Viet Nam", "VN"),
        ("Türkiye", "TR"),
        ("Côte d'Ivoire", "CI"),
        ("Åland Islands", "AX"),
        ("Netherlands", "NL"),
        # official names
        ("Federal Republic of Germany", "DE"),
        ("United Kingdom of Great Britain and Northern Ireland", "GB"),
        ("United States of America", "US"),
        ("Plurinational State of Bolivia", "BO"),
        ("Kingdom of the Netherlands", "NL"),
        ("Czech Republic", "CZ"),
        # common names
        ("Bolivia", "BO"),
        ("South Korea", "KR"),
        ("North Korea", "KP"),
        ("Vietnam", "VN"),
        ("Taiwan", "TW"),
        ("Iran", "IR"),
        ("Syria", "SY"),
        ("Laos", "LA"),
        ("Moldova", "MD"),
        ("Tanzania", "TZ"),
        ("Venezuela", "VE"),
        # folding: diacritics, apostrophes, dots, '&', leading 'the', inner spaces
        ("Cote d'Ivoire", "CI"),
        ("Côte d\u2019Ivoire", "CI"),
        ("Turkiye", "TR"),
        ("Aland Islands", "AX"),
        ("Curacao", "CW"),
        ("Reunion", "RE"),
        ("The Netherlands", "NL"),
        ("the Gambia", "GM"),
        ("The Bahamas", "BS"),
        ("Bosnia & Herzegovina", "BA"),
        ("Trinidad & Tobago", "TT"),
        ("United   Kingdom", "GB"),
        ("U.S.A.", "US"),
        ("U.S.", "US"),
        ("U.K.", "GB"),
        # aliases (documented in ALIASES)
        ("UK", "GB"),
        ("uk", "GB"),
        ("EL", "GR"),
        ("el", "GR"),
        ("AC", "SH"),
        ("TA", "SH"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("Russia", "RU"),
        ("Turkey", "TR"),
        ("Ivory Coast", "CI"),
        ("Cape Verde", "CV"),
        ("Vatican City", "VA"),
        ("Swaziland", "SZ"),
        ("Macedonia", "MK"),
        ("Burma", "MM"),
        ("DR Congo", "CD"),
        ("Republic of Korea", "KR"),
        ("Holland", "NL"),
        # ISO's "Congo" is the Republic of the Congo
        ("Congo", "CG"),
        # unknown
        ("Atlantis", None),
        ("Deutschland", None),  # no non-English names
        ("Allemagne", None),
        ("Korea", None),  # ambiguous
        ("America", None),
        ("XK", None),  # Kosovo: no ISO 3166-1 code
        ("EU", None),
        ("ZZ", None),
        ("XXX", None),
        ("999", None),
        ("0", None),
        ("1234", None),
        ("Germ", None),  # no fuzzy/prefix matching
        ("", None),
        ("   ", None),
    ],
)
def test_to_alpha2(value: str, expected: str | None) -> None:
    assert to_alpha2(value) == expected


def test_to_alpha2_non_string() -> None:
    assert to_alpha2(None) is None  # type: ignore[arg-type]
    assert to_alpha2(276) is None  # type: ignore[arg-type]


def test_every_pycountry_spelling_round_trips() -> None:
    for c in pycountry.countries:
        spellings = [c.alpha_2, c.alpha_3, c.numeric, c.name, c.alpha_2.lower(), c.name.upper()]
        spellings += [getattr(c, a) for a in ("official_name", "common_name") if hasattr(c, a)]
        for spelling in spellings:
            assert to_alpha2(spelling) == c.alpha_2, spelling


def test_no_name_is_ambiguous_and_aliases_are_iso() -> None:
    assert not country_mod._AMBIGUOUS_NAMES
    iso = {c.alpha_2 for c in pycountry.countries}
    assert set(ALIASES.values()) <= iso
    # aliases never shadow a real ISO code
    assert not {a for a in ALIASES if len(a) <= 3} & (iso | {c.alpha_3 for c in pycountry.countries})


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    "a2, alpha3",
    [
        ("DE", "DEU"),
        ("GB", "GBR"),
        ("US", "USA"),
        ("GR", "GRC"),
        ("de", "DEU"),
        (" fr ", "FRA"),
        ("AX", "ALA"),
    ],
)
def test_alpha2_to_alpha3(a2: str, alpha3: str) -> None:
    assert alpha2_to_alpha3(a2) == alpha3
    assert format_country(a2, "alpha3") == alpha3
    assert format_country(a2, "alpha2") == a2.strip().upper()


@pytest.mark.parametrize("bad", ["UK", "EL", "XK", "ZZ", "DEU", "Germany", ""])
def test_format_country_rejects_non_alpha2(bad: str) -> None:
    with pytest.raises(ValueError):
        alpha2_to_alpha3(bad)
    with pytest.raises(ValueError):
        format_country(bad, "alpha3")
    with pytest.raises(ValueError):
        format_country(bad, "alpha2")


def test_format_country_unknown_format() -> None:
    with pytest.raises(ValueError):
        format_country("DE", "numeric")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- IP


@pytest.mark.parametrize(
    "ip, expected",
    [
        # public addresses (iptocc maps RIR registrations, verified against iptocc 3.3)
        ("8.8.8.8", "US"),
        ("9.9.9.9", "US"),
        ("1.1.1.1", "AU"),  # registered to APNIC/Australia, not where the anycast answers
        ("193.99.144.80", "DE"),
        ("81.2.69.160", "GB"),
        ("80.67.169.12", "FR"),
        ("202.12.27.33", "JP"),
        ("200.160.2.3", "BR"),
        ("2001:4860:4860::8888", "US"),
        ("2001:4860:4860:0:0:0:0:8888", "US"),
        ("2001:4860:4860::8888".upper(), "US"),
        ("2606:4700:4700::1111", "US"),
        ("2a00:1450:4001:80b::200e", "IE"),
        ("2003::1", "DE"),
        # whitespace, IPv4-mapped IPv6
        (" 8.8.8.8\n", "US"),
        ("::ffff:8.8.8.8", "US"),
        # private, loopback, link-local, shared, documentation, multicast, reserved
        ("10.0.0.1", None),
        ("172.16.5.4", None),
        ("192.168.1.1", None),
        ("127.0.0.1", None),
        ("169.254.1.1", None),
        ("100.64.0.1", None),
        ("192.0.2.1", None),
        ("224.0.0.1", None),
        ("0.0.0.0", None),
        ("255.255.255.255", None),
        ("::1", None),
        ("fe80::1", None),
        ("fd00::1", None),
        ("2001:db8::1", None),
        ("::ffff:10.0.0.1", None),
        # invalid
        ("", None),
        ("not an ip", None),
        ("1.2.3", None),
        ("256.1.1.1", None),
        ("8.8.8.8/32", None),
        ("8.8.8.8:443", None),
    ],
)
def test_country_from_ip(ip: str, expected: str | None) -> None:
    assert country_from_ip(ip) == expected


def test_country_from_ip_drops_rir_eu_pseudo_code() -> None:
    ip = "145.218.1.91"
    assert iptocc_country_code(ip) == "EU"  # RIPE's "EU" is not a country
    assert country_from_ip(ip) is None


def test_country_from_ip_non_string() -> None:
    assert country_from_ip(None) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- locale


@pytest.mark.parametrize(
    "locale, expected",
    [
        ("de-DE", "DE"),
        ("de_AT", "AT"),
        ("en-GB", "GB"),
        ("en_us", "US"),
        ("pt_BR.UTF-8", "BR"),
        ("sr_RS@latin", "RS"),
        ("zh-Hant-TW", "TW"),
        ("zh_Hans_CN", "CN"),
        ("zh-yue-HK", "HK"),  # extended language subtag
        ("es-724", "ES"),  # UN M.49 numeric region that is an ISO country
        ("en-UK", "GB"),  # common mistake, alias
        ("  fr-CA  ", "CA"),
        ("de-CH,de;q=0.9,en;q=0.8", "CH"),  # Accept-Language: first range only
        ("de-DE-1996", "DE"),  # variant after the region
        ("fr", None),
        ("fr.UTF-8", None),
        ("en-US-x-private", "US"),
        ("de,en-US;q=0.8", None),  # first range has no region
        ("es-419", None),  # Latin America is not a country
        ("en-XX", None),
        ("sl-rozaj", None),  # variant, no region
        ("en-x-US", None),  # private use, not a region
        ("C", None),
        ("POSIX", None),
        ("C.UTF-8", None),
        ("", None),
    ],
)
def test_country_from_locale(locale: str, expected: str | None) -> None:
    assert country_from_locale(locale) == expected


# --------------------------------------------------------------------------- resolve_country


@pytest.mark.parametrize(
    "sources, default, expected",
    [
        # the country field wins over everything
        (CountrySources("Germany", "+33123456789", "8.8.8.8", "en-GB"), "FR", ("DE", "field")),
        (CountrySources("deu", None, None, None), None, ("DE", "field")),
        (CountrySources("UK", None, None, None), None, ("GB", "field")),
        # an unknown field value falls through to the phone
        (CountrySources("Atlantis", "+33123456789", "8.8.8.8", "en-GB"), "DE", ("FR", "phone")),
        (CountrySources("", "+33 1 23 45 67 89", "8.8.8.8", "en-GB"), "DE", ("FR", "phone")),
        (CountrySources(None, "0033 1 23 45 67 89", "8.8.8.8", "en-GB"), "DE", ("FR", "phone")),
        # a national-format phone cannot tell: the IP decides
        (CountrySources(None, "01 23 45 67 89", "8.8.8.8", "en-GB"), "DE", ("US", "ip")),
        (CountrySources(None, "not a phone", "2003::1", "en-GB"), "FR", ("DE", "ip")),
        # phone regions outside ISO: AC -> SH, XK -> no country
        (CountrySources(None, "+247 62889", None, None), None, ("SH", "phone")),
        (CountrySources(None, "+383 44 123 456", "8.8.8.8", None), None, ("US", "ip")),
        # private IP falls through to the locale
        (CountrySources(None, None, "192.168.0.1", "pt_BR.UTF-8"), "DE", ("BR", "locale")),
        (CountrySources(None, None, None, "zh-Hant-TW"), "DE", ("TW", "locale")),
        # language-only locale falls through to the default, in any accepted spelling
        (CountrySources(None, None, None, "fr"), "Germany", ("DE", "default")),
        (CountrySources(None, None, None, None), "deu", ("DE", "default")),
        (CountrySources(None, None, None, None), "UK", ("GB", "default")),
        (CountrySources("Atlantis", "12", "10.0.0.1", "fr"), "DE", ("DE", "default")),
        # nothing at all
        (CountrySources(None, None, None, None), None, None),
        (CountrySources("Atlantis", "12", "10.0.0.1", "fr"), None, None),
        (CountrySources("Atlantis", "12", "10.0.0.1", "fr"), "Narnia", None),
    ],
)
def test_resolve_country(sources: CountrySources, default: str | None, expected: tuple[str, str] | None) -> None:
    assert resolve_country(sources, default) == expected


def test_country_sources_keywords() -> None:
    sources = CountrySources(country=None, phone=None, ip="8.8.8.8", locale=None)
    assert resolve_country(sources) == ("US", "ip")
    assert CountrySources() == CountrySources(None, None, None, None)
