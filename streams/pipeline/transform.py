"""One route's pipeline: bytes -> decode -> map -> enrich -> consent gate -> encode.

Pure: the decoder's schema store and the destination are handed in (`streams.routes.build_pipelines`
builds them, the registry client too); a writer schema id that is not cached yet raises
`SchemaNeeded` (the pipeline never asks the registry itself); the worker fetches it off the event loop and
processes the record again, replay uses `process_blocking`. The worker, replay and the
``transform`` dry run all run `RoutePipeline.process`: what the dry run prints is what the worker sends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from streams.codec import DecodeError, Decoder, SchemaNeeded
from streams.errors import EventTooLarge, MissingCountry, MissingIdentifier, RecordError
from streams.pipeline import consent as consent_mod
from streams.pipeline.consent import MissingConsent
from streams.pipeline.country import CountryFormat, format_country, resolve_country_values
from streams.pipeline.identity import IdentityProfile, PhoneFormat, cached_identifier, identifier
from streams.pipeline.mapping import _MISSING, Mapping, MappingError, TimestampFormat, compile_str_getters
from streams.pipeline.outcome import (
    CONSENT,
    CONSENT_DENIED,
    DECODE,
    EMPTY_VALUE,
    ENCODE,
    ENRICH,
    MISSING_COUNTRY,
    MISSING_IDENTIFIER,
    ROUTE,
    ROUTE_NOT_FORWARDED,
    TOMBSTONE,
    TOO_LARGE,
    UNENCODABLE,
    Filtered,
    Outcome,
    Payload,
    Rejected,
)
from streams.pipeline.sections import EVENT_ID, EVENT_NAME

if TYPE_CHECKING:  # the route's settings are read, never built, here: the pipeline loads no config
    from streams.config import RouteSettings

# deterministic event ids for records without one: same topic/partition/offset -> same id
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2b1e-3c55-4b7e-9a59-0d7f3e1c9b42")


def fallback_event_id(topic: str, partition: int, offset: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{topic}/{partition}/{offset}"))


# What the pipeline reads of a destination, as protocols: it names no destination and imports none
# (`streams.destinations.DestinationAPI` and its settings are what fits them).


class IdentityOptions(Protocol):
    @property
    def hash(self) -> bool: ...
    @property
    def phone_format(self) -> PhoneFormat: ...
    @property
    def fold_gmail(self) -> bool: ...


class ConsentOptions(Protocol):
    @property
    def require(self) -> tuple[str, ...]: ...
    @property
    def any_of(self) -> tuple[str, ...]: ...
    @property
    def missing(self) -> MissingConsent: ...


class DestinationOptions(Protocol):
    """The settings of a destination the pipeline applies (identifiers, consent, formats)."""

    @property
    def identity(self) -> IdentityOptions: ...
    @property
    def consent(self) -> ConsentOptions: ...
    @property
    def country_format(self) -> CountryFormat: ...
    @property
    def timestamp_format(self) -> TimestampFormat: ...


class EventShape(Protocol):
    """A destination as the pipeline sees it: its options, its event for the sections, its size limit."""

    @property
    def name(self) -> str: ...
    @property
    def settings(self) -> DestinationOptions: ...
    @property
    def max_request_bytes(self) -> int: ...
    def envelope_bytes(self, n_events: int) -> int: ...
    def payload(self, sections: dict[str, dict[str, Any]], nce: bool) -> dict[str, Any]: ...


class NativePlan(Protocol):
    """A route's native plan (`streams.native`): handed in, so the pipeline imports no extension."""

    def run(self, values: list[bytes | None]) -> list[tuple[str, bytes] | str]: ...
    def add_writer_id(self, schema_id: int) -> None: ...


class RoutePipeline:
    """Compiled once per route; `process` runs per record. `native`, when a plan is attached
    (`streams.native.attach_plans`), makes the payloads of a whole batch at once (`native_payloads`)."""

    def __init__(
        self,
        name: str,
        route: RouteSettings,
        destination: EventShape,
        decoder: Decoder | None,
    ) -> None:
        self.name = name
        self.route = route
        self.destination = destination
        self.decoder = decoder
        dest = destination.settings
        self.nce = route.entity == "nce"
        self.mapping = Mapping(route.mapping, dest.timestamp_format)
        self.profile = IdentityProfile(
            hash=dest.identity.hash, phone_format=dest.identity.phone_format, fold_gmail=dest.identity.fold_gmail
        )
        self.country_fmt = dest.country_format
        self.policy = consent_mod.ConsentPolicy(
            require=dest.consent.require, any_of=dest.consent.any_of, missing=dest.consent.missing
        )
        self.enforce_consent = not self.nce and route.enforce_consent
        self._event_names = dict(route.event_names)
        cs = route.country
        # (record) -> (country, phone, ip, locale): the non-empty strings at those paths, else None
        self._country_sources = compile_str_getters((cs.field, cs.phone, cs.ip, cs.locale))
        self.default_country = cs.default
        self.country_targets = self.mapping.country_targets or ([] if self.nce else [("user", "country")])
        self._identity_targets = [(t.section, t.key, t.kind) for t in self.mapping.identity_targets]
        self._id_targets = self.mapping.id_targets
        # names are PII but not identifiers: a record needs an id, an email or a phone
        self._identifier_names = [f"{s}.{k}" for s, k in self._id_targets] + [
            f"{s}.{k}" for s, k, kind in self._identity_targets if kind != "name"
        ]
        self.max_event_bytes = destination.max_request_bytes - destination.envelope_bytes(1)
        self.native: NativePlan | None = None
        self._writer_ids_told = 0  # Confluent writer ids known to be the reader's, told to the plan

    def native_payloads(self, values: list[bytes | None]) -> tuple[list[Payload | None], Counter[str]] | None:
        """The payloads the native plan makes of these record values, in order, with None for each
        record it hands back (run `process` for those) and why it handed them back, counted; None
        when the route has no plan. Same payloads as `process` (tests/unit/test_native_plan.py)."""
        plan = self.native
        if plan is None:
            return None
        decoder = self.decoder
        if decoder is not None and len(decoder.same_as_reader) != self._writer_ids_told:
            for schema_id in decoder.same_as_reader:
                plan.add_writer_id(schema_id)
            self._writer_ids_told = len(decoder.same_as_reader)
        payloads: list[Payload | None] = []
        handed_back: Counter[str] = Counter()
        for made in plan.run(values):
            if type(made) is tuple:
                payloads.append(Payload(made[0], made[1]))
            else:
                payloads.append(None)
                handed_back[made] += 1  # type: ignore[index]
        return payloads, handed_back

    # ------------------------------------------------------------------ stages

    def process(self, value: bytes | None, topic: str, partition: int, offset: int) -> Outcome:
        """Full pipeline from the record's bytes."""
        assert self.decoder is not None
        if value is None:  # a tombstone (a key's delete marker) carries no event: filtered, counted
            return Filtered(DECODE, TOMBSTONE, "record has no value (tombstone)")
        try:
            record = self.decoder.decode(value)
        except DecodeError as exc:
            return Rejected(exc.stage, exc.reason if value else EMPTY_VALUE, str(exc), exc.error_class)
        return self.process_record(record, topic, partition, offset)

    def process_blocking(self, value: bytes | None, topic: str, partition: int, offset: int) -> Outcome:
        """`process`, fetching a missing writer schema here and now (through the same cache); for
        callers that serve nothing else meanwhile (replay). Raises SchemaRegistryUnavailable."""
        while True:
            try:
                return self.process(value, topic, partition, offset)
            except SchemaNeeded as need:
                assert self.decoder is not None
                # a refused id is remembered: `process` turns it into the record's rejection
                with contextlib.suppress(DecodeError):
                    self.decoder.store.fetch(need.schema_id)

    def process_record(self, record: dict[str, Any], topic: str, partition: int, offset: int) -> Outcome:
        """Pipeline after decoding (map -> enrich -> consent -> encode)."""
        try:
            sections = self.mapping.apply(record).sections
        except MappingError as exc:
            return Rejected(exc.stage, exc.reason, str(exc), exc.error_class, _raw_event_id(record))
        event = sections.get("event")
        if event is None:
            event = sections["event"] = {}
        event_id = event.get(EVENT_ID)
        if not isinstance(event_id, str) or not event_id:
            event_id = fallback_event_id(topic, partition, offset)
            event[EVENT_ID] = event_id
        if self._event_names:  # the route's names as the destination calls them
            name = event.get(EVENT_NAME)
            if isinstance(name, str) and name in self._event_names:
                event[EVENT_NAME] = self._event_names[name]

        if not self.route.forward:
            return Filtered(ROUTE, ROUTE_NOT_FORWARDED, f"route {self.name} does not forward events", event_id)
        if self.nce:
            # no country or identifier is required, but an identifier mapped anyway is never sent raw
            self._identifiers(sections, None)
        else:
            rejected = self._enrich(record, sections, event_id)
            if rejected is not None:
                return rejected
            if self.enforce_consent:
                why = consent_mod.evaluate(sections.get("consent") or {}, self.policy)
                if why is not None:
                    return Filtered(CONSENT, CONSENT_DENIED, why, event_id)

        try:
            body = orjson.dumps(self.destination.payload(sections, self.nce))
        except RecordError as exc:  # the destination's own check of the event (e.g. a required field)
            return Rejected(exc.stage, exc.reason, str(exc), exc.error_class, event_id)
        except (TypeError, orjson.JSONEncodeError) as exc:
            return Rejected(ENCODE, UNENCODABLE, str(exc)[:200], type(exc).__name__, event_id)
        if len(body) > self.max_event_bytes:
            return Rejected(
                ENCODE,
                TOO_LARGE,
                f"event is {len(body)} bytes, over {self.destination.name}'s limit of {self.max_event_bytes}",
                EventTooLarge.__name__,
                event_id,
            )
        return Payload(event_id, body)

    def _enrich(self, record: dict[str, Any], sections: dict[str, dict[str, Any]], event_id: str) -> Rejected | None:
        country, phone, ip, locale = self._country_sources(record)
        found = resolve_country_values(country, phone, ip, locale, self.default_country)
        if found is None:
            return Rejected(
                ENRICH,
                MISSING_COUNTRY,
                "no country: the record has no usable country field, phone region, IP address or locale, "
                "and the route sets no default country",
                MissingCountry.__name__,
                event_id,
            )
        alpha2 = found[0]
        country = format_country(alpha2, self.country_fmt)
        for section, key in self.country_targets:
            sections.setdefault(section, {})[key] = country

        present = self._identifiers(sections, alpha2)
        if present == 0 and self._identifier_names:
            return Rejected(
                ENRICH,
                MISSING_IDENTIFIER,
                "no user identifier: none of " + ", ".join(self._identifier_names) + " has a usable value",
                MissingIdentifier.__name__,
                event_id,
            )
        return None

    def _identifiers(self, sections: dict[str, dict[str, Any]], alpha2: str | None) -> int:
        """Trim ids, normalise (and hash) emails/phones/names in place; count usable identifiers."""
        present = 0
        for section, key in self._id_targets:
            body = sections.get(section)
            if body is None or key not in body:
                continue
            v = str(body[key]).strip()
            if v:
                body[key] = v
                present += 1
            else:
                del body[key]
        profile = self.profile
        profile_key = profile.key
        for section, key, kind in self._identity_targets:
            body = sections.get(section)
            if body is None:
                continue
            raw_value = body.get(key)
            if raw_value is None:
                continue
            if type(raw_value) is str:
                norm = cached_identifier(kind, raw_value, profile_key, alpha2)
            else:
                norm = identifier(kind, raw_value, profile, alpha2)  # type: ignore[arg-type]
            if norm is None:
                del body[key]  # invalid email/phone: never send it raw
            else:
                body[key] = norm
                present += kind != "name"
        return present


def _raw_event_id(record: dict[str, Any]) -> str | None:
    v = record.get("event_id", _MISSING)
    return v if isinstance(v, str) else None
