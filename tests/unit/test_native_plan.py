"""The native plans against the Python pipeline, their reference: every route of every shipped config,
over a large generated corpus. A payload the plan makes must be byte-identical to `RoutePipeline.process`'s
(event id and body); a record the plan hands back is processed by Python anyway, so rejections and filters
are Python's by construction. Any difference is a bug in one of the two.

The corpus: the sample factory's records in every variant (consent granted / denied / missing, no country,
no identifier), then the same records with their strings replaced by hard cases (Unicode in every script,
odd whitespace, zero-width characters, pre-hashed digests, country spellings, phone formats, IP addresses,
locales, empty strings), and malformed bytes (truncated, corrupted, extended)."""

from __future__ import annotations

import contextlib
import random
import re
import string
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pycountry
import pytest

from streams.codec import encode_plain
from streams.config import load_config
from streams.dev.samples import EVENTS, SampleFactory
from streams.native import attach_plans
from streams.pipeline.identity import sha256_hex
from streams.pipeline.transform import RoutePipeline
from streams.routes import build_pipelines
from tests.unit.native_support import require_extension

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [*sorted((ROOT / "examples").glob("*.yaml")), ROOT / "deploy" / "base" / "bridge.yaml"]
ENV = {
    "ZEOTAP_WRITE_KEY": "k",
    "ACTIVATION_API_KEY": "k",
    "AUDIOHOOK_PIXEL_ID": "p",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "POD_NAME": "w-0",
    "KAFKA_USERNAME": "u",
    "KAFKA_PASSWORD": "p",
}

SPACES = [" ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x85", "\u00a0", "\u200b", "\ufeff", "\u3000", "\u2003"]
UNICODE_WORDS = [
    "Jürgen", "ÉMILE", "Zoë", "José", "straße", "STRASSE", "İstanbul", "ıi", "ΣΟΦΙΑ", "Σοφία", "Ἀθῆναι", "Дмитрий",
    "ДМИТРИЙ", "김민준", "山田", "ǅemal", "ǄEMAL", "e\u0301mile", "A\u030a", "Å", "ﬁnn", "Ｆｕｌｌ", "\U0001d400bc", "🙂",
    "Ωmega", "K\u212a", "ǰ", "ŉ", "ᾼ", "Ⅻ", "ⓐ", "𐐀", "o\u0308\u0301", "\u0149x",
]  # fmt: skip
DIGEST = sha256_hex("someone@example.com")
HASHED = [DIGEST, DIGEST.upper(), f"  {DIGEST}\n", DIGEST[:63], DIGEST + "0", DIGEST[:-1] + "g", "\u200b" + DIGEST]
EMAILS = [
    "", " ", "@", "a@", "@b.com", "a@b", "a@.com", "a@b..com", "a@b.com.", "a@@b.com", "a@b@c.com", "a b@c.com",
    "a@b\x1c.com", "a\t@b.com", "+@gmail.com", ".+x@gmail.com", "...@googlemail.com", "A.B+C@GoogleMail.COM",
    "x@GMAIL.com", "a+b@gmail.co", "ünï@cödé.de", "İ@x.com", "ß@x.com", "ΣΑΣ@x.gr", "a@x.com\u200b", "\ufeffa@x.com",
    "a\u00a0b@x.com", "ＡＢ@ｘ.com",
]  # fmt: skip
PHONES = [
    "+4930123456", "+49 30 1234567", "0049 30 1234567", "(030) 123-45.67", "030 1234567", "+1 (212) 555-0123",
    "212-555-0123", "+44 20 7946 0018", "07700 900123", "+33 6 12 34 56 78", "0612345678", "+39 06 12345678",
    "+34 912 345 678", "+7 495 123-45-67", "+800 1234 5678", "+999 123", "12", "+", "++49301234567",
    "+49 (0) 30 1234567", "＋４９３０１２３４５６７", "٠١٢٣٤٥٦٧٨٩", "+49301234567 ext. 12", "tel:+49301234567",
    "+1 242 357 1234", "+44 1481 123456", "0011 61 2 1234 5678", "+61 2 1234 5678", "+86 10 1234 5678",
]  # fmt: skip
COUNTRIES = [
    "DE", "de", " De ", "DEU", "deu", "276", "4", "004", "Germany", "germany", "GERMANY", "The Netherlands",
    "the gambia", "U.K.", "UK", "uk", "EL", "Great Britain", "Côte d'Ivoire", "Cote d'Ivoire", "Cote d`Ivoire",
    "Bosnia & Herzegovina", "Korea", "Congo", "XK", "EU", "Atlantis", "", " ", "Türkiye", "Deutschland",
    "United  States", "u.s.a.", "USA", "Russia", "Bolivia, Plurinational State of", "\u00a0FR\u00a0", "ZZ", "999",
]  # fmt: skip
IPS = ["85.214.132.117", "8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "10.0.0.1", "127.0.0.1", "300.1.1.1",
       "not an ip", " 81.2.69.160 ", "2a01:238:4200::1", "::1", "0.0.0.0", "1.1.1.1"]  # fmt: skip
LOCALES = ["de-DE", "de_AT", "pt_BR.UTF-8", "sr_RS@latin", "zh-Hant-TW", "es-724", "es-419", "fr", "C", "de-CH,de;q=0.9",
           "en-x-foo", "EN-gb", "ca-ES-valencia", "xx-YY", "de-DÉ", ""]  # fmt: skip


def _env_for(path: Path) -> dict[str, str]:
    """A value for every variable the config requires (a URL where the name says one)."""
    env = dict(ENV)
    for name in re.findall(r"\$\{([A-Z0-9_]+)\}", path.read_text()):
        env.setdefault(name, "http://127.0.0.1:1" if name.endswith("_URL") else "4" if "MAX" in name else "x")
    return env


def _nasty(field: str, rng: random.Random) -> str:
    """A hard string for a field, by what its name says it holds."""
    name = field.lower()
    pick: list[str]
    if "email" in name:
        pick = EMAILS + HASHED + [w + "@x.com" for w in UNICODE_WORDS]
    elif "phone" in name:
        pick = PHONES + HASHED
    elif "country" in name:
        pick = COUNTRIES + [c.name for c in rng.sample(list(pycountry.countries), 3)]
    elif name.startswith("ip"):
        pick = IPS
    elif "locale" in name:
        pick = LOCALES
    else:
        pick = UNICODE_WORDS + HASHED + ["", "0", "true", "yes", "Opt-In", "x" * rng.randint(1, 40)]
    value = rng.choice(pick)
    if rng.random() < 0.3:
        value = rng.choice(SPACES) * rng.randint(1, 2) + value + rng.choice(SPACES) * rng.randint(0, 2)
    return value


def _mutate(value: Any, rng: random.Random, field: str = "", p: float = 0.35) -> Any:
    """The record with some of its strings replaced by hard cases (the schema still fits)."""
    if isinstance(value, dict):
        return {k: _mutate(v, rng, k, p) for k, v in value.items()}
    if isinstance(value, list):
        return [_mutate(v, rng, field, p) for v in value]
    if isinstance(value, str) and field not in ("event_id",) and rng.random() < p:
        return _nasty(field, rng)
    return value


def _records(p: RoutePipeline, n: int, seed: int) -> list[bytes | None]:
    """Encoded records of the route: every sample variant, mutated ones, malformed bytes, a tombstone."""
    assert p.decoder is not None
    rng = random.Random(seed)
    factory = SampleFactory(seed)
    event = p.route.topic if p.route.topic in EVENTS else EVENTS[0]
    variants: list[dict[str, Any]] = [
        {},
        {"consent_granted": False},
        {"consent_granted": None},
        {"country": False},
        {"identifiers": False},
    ]
    out: list[bytes | None] = [None]
    for i in range(n):
        record = factory.record(event, **variants[i % len(variants)])
        if i % 7 == 3 and "event_id" in record:
            record["event_id"] = rng.choice(["", " ", "é"])
        data = encode_plain(p.decoder.reader, record)
        if i % 3 == 1:
            # (a string put in an enum field does not encode: the record stays as it was)
            with contextlib.suppress(ValueError):
                data = encode_plain(p.decoder.reader, _mutate(record, rng))
        if i % 23 == 5:
            data = data[: rng.randrange(len(data))]
        elif i % 23 == 11:
            data = bytes(b ^ (rng.random() < 0.05) * rng.randrange(1, 256) for b in data)
        elif i % 23 == 17:
            data = data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        out.append(data)
    return out


def _compare(name: str, p: RoutePipeline, values: list[bytes | None]) -> Counter[str]:
    result = p.native_payloads(values)
    assert result is not None
    made, handed_back = result
    assert len(made) == len(values) and sum(handed_back.values()) == made.count(None)
    seen: Counter[str] = Counter()
    for offset, (value, native) in enumerate(zip(values, made, strict=True)):
        expected = p.process(value, p.route.topic, 3, offset)
        seen[type(expected).__name__] += 1
        if native is not None:
            assert native == expected, (name, offset, value)
            seen["native"] += 1
    return seen


def _planned(config: Any) -> dict[str, RoutePipeline]:
    """The config's pipelines with their native plans, as the worker builds them."""
    pipelines = build_pipelines(config)
    attach_plans(pipelines, config.worker.native)
    return pipelines


@pytest.mark.parametrize("config_path", CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in CONFIGS])
def test_every_route_with_a_plan_makes_python_s_payloads(config_path: Path, tmp_path: Path) -> None:
    require_extension()
    if config_path.parent.name == "base":  # the image's /app/avro_schemas is the repository's here
        text = config_path.read_text().replace("/app/avro_schemas/", f"{ROOT}/avro_schemas/")
        (tmp_path / config_path.name).write_text(text)
        config_path = tmp_path / config_path.name
    pipelines = _planned(load_config(config_path, env=_env_for(config_path)))
    planned = {n: p for n, p in pipelines.items() if p.native is not None}
    for name, p in planned.items():
        seen = _compare(name, p, _records(p, 1500, seed=zlib.crc32(name.encode()) % 1000))
        # the plan did the bulk of the work (the test cannot pass by handing everything back)
        assert seen["native"] >= 0.6 * seen["Payload"], (name, seen)
        assert {"Payload", "Rejected", "Filtered"} <= set(seen), (name, seen)


def test_the_sample_records_are_made_natively_nearly_all() -> None:
    """Unmutated sample records (the demo's and the benchmark's): the plan makes nearly every payload."""
    require_extension()
    pipelines = _planned(load_config(ROOT / "examples" / "bridge.yaml", env=ENV))
    p = pipelines["purchase_completed"]
    assert p.native is not None and p.decoder is not None
    factory = SampleFactory(5)
    values: list[bytes | None] = [encode_plain(p.decoder.reader, factory.record("purchase_completed")) for _ in range(5000)]
    seen = _compare("purchase_completed", p, values)
    assert seen["native"] >= 0.99 * seen["Payload"], seen


def test_the_routes_without_a_plan_say_why() -> None:
    require_extension()
    pipelines = _planned(load_config(ROOT / "examples" / "bridge.yaml", env=ENV))
    assert pipelines["market_offer_assignment"].native is None  # entity: nce
    assert pipelines["purchase_completed"].native is not None


def test_fuzzed_bytes_never_make_a_payload_python_would_not() -> None:
    require_extension()
    pipelines = _planned(load_config(ROOT / "examples" / "bridge.yaml", env=ENV))
    p = pipelines["purchase_completed"]
    assert p.decoder is not None
    rng = random.Random(99)
    factory = SampleFactory(99)
    good = [encode_plain(p.decoder.reader, factory.record("purchase_completed")) for _ in range(200)]
    values: list[bytes | None] = []
    for _ in range(6000):
        base = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        values.append(bytes(base))
    values += [bytes(rng.randrange(256) for _ in range(rng.randint(0, 60))) for _ in range(2000)]
    values += [b"", b"\x00", b"\x02" + b"\xff" * 20, "".join(rng.choice(string.printable) for _ in range(50)).encode()]
    seen = _compare("purchase_completed", p, values)
    assert seen["Rejected"] > 0
