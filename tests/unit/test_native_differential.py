"""The native core against the Python pipeline, its reference: byte-identical results or a bug in one of them.

Two levels: the identity stage value by value (every kind, every profile, a large generated corpus with
unicode, odd whitespace, pre-hashed and malformed values), and every route of every shipped config over
sample records and malformed bytes (payload bytes, rejections and filters identical)."""

from __future__ import annotations

import random
import string
from itertools import product
from pathlib import Path

import pytest

from streams.codec import encode_plain
from streams.config import load_config
from streams.dev.samples import EVENTS, SampleFactory
from streams.native import NativeCore
from streams.pipeline.identity import IdentityProfile, cached_identifier, sha256_hex
from streams.pipeline.transform import RoutePipeline
from streams.routes import build_pipelines
from tests.unit.native_support import require_extension

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "examples").glob("*.yaml"))
ENV = {"ZEOTAP_WRITE_KEY": "k", "ACTIVATION_API_KEY": "k"}
KINDS = ("email", "name", "id", "phone", "other")
PROFILES = [
    IdentityProfile(hash=h, phone_format=f, fold_gmail=g, lowercase_names=lc)
    for h, f, g, lc in product((True, False), ("e164", "digits"), (True, False), (True, False))
]
# ASCII whitespace Python strips (including the separators 0x1c..0x1f), zero-width and Unicode spaces it
# handles differently: all must come out as the reference says
SPACES = [" ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\u00a0", "\u200b", "\ufeff", "\u3000"]
MALFORMED_EMAILS = [
    "", " ", "@", "a@", "@b.com", "a@b", "a@.com", "a@b..com", "a@b.com.", "a@@b.com", "a@b@c.com", "a b@c.com",
    "a@b\x1c.com", "a\t@b.com", "+@gmail.com", ".+x@gmail.com", "...@googlemail.com", "A.B+C@GoogleMail.COM",
    "x@GMAIL.com", "a+b@gmail.co", "ünï@cödé.de", "İ@x.com", "ß@x.com", "ΣΑΣ@x.gr", "a@x.com\u200b", "\ufeffa@x.com",
]


def _corpus(n: int, seed: int = 17) -> list[str]:
    rng = random.Random(seed)
    factory = SampleFactory(seed)
    values: list[str] = list(MALFORMED_EMAILS)
    for event in EVENTS:
        for _ in range(n // len(EVENTS)):
            c = factory.record(event).get("customer") or {}
            values += [str(v) for v in c.values() if v is not None]
    digest = sha256_hex("someone@example.com")
    values += [digest, digest.upper(), f"  {digest}\n", digest[:63], digest + "0", digest[:-1] + "g"]
    alphabet = string.printable + "\x1c\x1d\x1e\x1f\x7f@@..++"
    for _ in range(n):  # fuzz: random ASCII, e-mail-shaped and not, wrapped in random whitespace
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        if rng.random() < 0.5:
            body = f"{body}@{rng.choice(['gmail.com', 'googlemail.com', 'x.de', 'a..b', 'b.c.'])}"
        values.append(rng.choice(SPACES) * rng.randint(0, 2) + body + rng.choice(SPACES) * rng.randint(0, 2))
    return values


def test_identity_stage_matches_the_reference_on_a_large_corpus() -> None:
    core = NativeCore(require_extension())
    corpus = _corpus(6000)
    compared = 0
    for profile in PROFILES:
        identify = core.identify_for(profile)
        for kind, value in product(KINDS, corpus):
            expected = cached_identifier(kind, value, profile.key, "DE")  # type: ignore[arg-type]
            assert identify(kind, value, profile.key, "DE") == expected, (kind, value, profile)
            compared += 1
    assert compared > 16 * 5 * 6000
    # the native path did the bulk: what fell back is phones and non-ASCII text only
    native_share = 1 - sum(core.fallbacks.values()) / compared
    assert native_share > 0.5, core.fallbacks


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_route_gives_identical_outcomes(config_path: Path) -> None:
    core = NativeCore(require_extension())
    config = load_config(config_path, env=ENV)
    python = build_pipelines(config)
    native = {name: RoutePipeline(name, p.route, p.destination, p.decoder, core) for name, p in python.items()}
    factory = SampleFactory(23)
    rng = random.Random(23)
    kinds: set[str] = set()
    for name, p in python.items():
        assert p.decoder is not None
        for offset in range(400):
            data = encode_plain(p.decoder.reader, factory.record(p.route.topic))
            if offset % 25 == 0:  # malformed bytes: truncated or corrupted
                data = data[: rng.randrange(len(data))] if offset % 50 == 0 else bytes(rng.randrange(256) for _ in data)
            expected = p.process(data, p.route.topic, 0, offset)
            assert native[name].process(data, p.route.topic, 0, offset) == expected, (name, offset)
            kinds.add(type(expected).__name__)
    assert {"Payload", "Rejected"} <= kinds
