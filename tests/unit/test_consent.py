"""Consent normalisation and policies (streams.pipeline.consent)."""

from __future__ import annotations

import pytest

from streams.pipeline.consent import ConsentPolicy, evaluate, normalize_consent, normalize_consents

GRANTED: list[object] = [
    True, "true", "True", "TRUE", " true ", "yes", "YES", "y", "Y", "1", 1, 1.0,
    "granted", "GRANTED", "grant", "allow", "allowed", "opt-in", "optin", "opted_in", "Opt In",
    "opted-in", "OPT_IN", "on", "ON", "accepted", "accept", "\ttrue\n",
]  # fmt: skip
DENIED: list[object] = [
    False, "false", "False", "no", "NO", "n", "0", 0, 0.0, "denied", "deny", "declined", "decline",
    "rejected", "reject", "opt-out", "optout", "opted_out", "Opted-Out", "off", "OFF", "revoked",
    "revoke", "withdrawn", "withdraw", " No ",
]  # fmt: skip
UNKNOWN: list[object] = [
    None, "", "   ", "maybe", "unknown", "pending", "2", 2, -1, 0.5, "truee", "yes!",
    [], {}, b"yes", "t", "f",
]  # fmt: skip


@pytest.mark.parametrize("value", GRANTED)
def test_granted(value: object) -> None:
    assert normalize_consent(value) is True


@pytest.mark.parametrize("value", DENIED)
def test_denied(value: object) -> None:
    assert normalize_consent(value) is False


@pytest.mark.parametrize("value", UNKNOWN)
def test_unknown(value: object) -> None:
    assert normalize_consent(value) is None


def test_bool_checked_before_int() -> None:
    # True == 1 and False == 0, but the result must be the bool itself either way
    assert normalize_consent(True) is True
    assert normalize_consent(False) is False


@pytest.mark.parametrize(
    "raw, expected",
    [
        (None, {}),
        ({}, {}),
        ({"marketing": "yes", "analytics": "denied"}, {"marketing": True, "analytics": False}),
        ({" Marketing ": 1, "ANALYTICS": False}, {"marketing": True, "analytics": False}),
        ({"marketing": "maybe", "ads": None, "": True, "x": "granted"}, {"x": True}),
    ],
)
def test_normalize_consents(raw: dict[str, object] | None, expected: dict[str, bool]) -> None:
    assert normalize_consents(raw) == expected


REQ_MARKETING = ConsentPolicy(require=("marketing",))
REQ_BOTH = ConsentPolicy(require=("marketing", "analytics"))
REQ_BOTH_FWD = ConsentPolicy(require=("marketing", "analytics"), missing="forward")
ANY = ConsentPolicy(any_of=("analytics", "personalisation"))
ANY_FWD = ConsentPolicy(any_of=("analytics", "personalisation"), missing="forward")
NONE_GRANTED = "none of consents analytics, personalisation granted"
BOTH_KINDS = ConsentPolicy(require=("marketing",), any_of=("analytics", "personalisation"))


@pytest.mark.parametrize(
    "consents, policy, expected",
    [
        # no policy: always forward
        ({}, ConsentPolicy(), None),
        ({"marketing": False}, ConsentPolicy(), None),
        # require (AND), missing=filter (default)
        ({"marketing": True}, REQ_MARKETING, None),
        ({"marketing": False}, REQ_MARKETING, "consent 'marketing' denied"),
        ({}, REQ_MARKETING, "consent 'marketing' missing"),
        ({"marketing": None}, REQ_MARKETING, "consent 'marketing' missing"),
        ({"marketing": True, "analytics": True}, REQ_BOTH, None),
        ({"marketing": True, "analytics": False}, REQ_BOTH, "consent 'analytics' denied"),
        ({"marketing": True}, REQ_BOTH, "consent 'analytics' missing"),
        ({"analytics": False}, REQ_BOTH, "consent 'marketing' missing"),  # first failure in order
        # require, missing=forward: only an explicit denial filters
        ({}, REQ_BOTH_FWD, None),
        ({"marketing": True}, REQ_BOTH_FWD, None),
        ({"marketing": None, "analytics": None}, REQ_BOTH_FWD, None),
        ({"marketing": True, "analytics": False}, REQ_BOTH_FWD, "consent 'analytics' denied"),
        # any_of (OR)
        ({"analytics": True}, ANY, None),
        ({"personalisation": True, "analytics": False}, ANY, None),
        ({"analytics": False, "personalisation": False}, ANY, NONE_GRANTED),
        ({"analytics": False}, ANY, NONE_GRANTED),
        ({}, ANY, NONE_GRANTED),
        # any_of, missing=forward: a missing one counts, all denied filters
        ({}, ANY_FWD, None),
        ({"analytics": False}, ANY_FWD, None),
        ({"analytics": False, "personalisation": False}, ANY_FWD, NONE_GRANTED),
        # require AND any_of
        ({"marketing": True, "analytics": True}, BOTH_KINDS, None),
        ({"marketing": True}, BOTH_KINDS, NONE_GRANTED),
        ({"marketing": False, "analytics": True}, BOTH_KINDS, "consent 'marketing' denied"),
        # raw (un-normalised) values are tolerated
        ({"marketing": "granted"}, REQ_MARKETING, None),
        ({"marketing": "opt-out"}, REQ_MARKETING, "consent 'marketing' denied"),
        ({"marketing": "maybe"}, REQ_MARKETING, "consent 'marketing' missing"),
    ],
)
def test_evaluate(consents: dict[str, bool | None], policy: ConsentPolicy, expected: str | None) -> None:
    assert evaluate(consents, policy) == expected


def test_evaluate_with_normalized_consents() -> None:
    consents = normalize_consents({"Marketing": "YES", "Analytics": "opted_out", "ads": "?"})
    assert evaluate(consents, ConsentPolicy(require=("marketing",))) is None
    assert evaluate(consents, ConsentPolicy(require=("analytics",))) == "consent 'analytics' denied"
    assert evaluate(consents, ConsentPolicy(require=("ads",))) == "consent 'ads' missing"
    assert evaluate(consents, ConsentPolicy(require=("ads",), missing="forward")) is None


def test_policy_normalises_purposes() -> None:
    policy = ConsentPolicy(require=[" Marketing "], any_of=["Analytics", " "])  # type: ignore[arg-type]
    assert policy.require == ("marketing",)
    assert policy.any_of == ("analytics",)
    assert hash(policy) == hash(ConsentPolicy(require=("marketing",), any_of=("analytics",)))
    assert evaluate({"marketing": True, "analytics": True}, policy) is None


def test_policy_rejects_bad_missing() -> None:
    with pytest.raises(ValueError):
        ConsentPolicy(missing="drop")  # type: ignore[arg-type]
