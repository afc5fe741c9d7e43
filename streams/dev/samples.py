"""Realistic sample business events for the demo, the tests and the benchmark (deterministic by seed)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

EVENTS = (
    "purchase_completed",
    "subscription_started",
    "subscription_canceled",
    "contract_renewed",
    "consent_updated",
    "page_view",
    "market_offer_assignment",
)

_FIRST = ["Anna", "Jürgen", "Marie", "José", "Zoë", "Liam", "Sofía", "Noah", "Émile", "Hana", "Ola", "Mia"]
_LAST = ["Müller", "García", "Smith", "Dupont", "Rossi", "Nowak", "Jensen", "O'Brien", "Silva", "Kowalski"]
_DOMAINS = ["example.com", "gmail.com", "mail.de", "outlook.fr", "example.co.uk", "web.es"]
# (alpha-2, country spelling variants, phone formats, public IPs known to map to the country)
_COUNTRIES: list[tuple[str, list[str], list[str], list[str]]] = [
    ("DE", ["DE", "DEU", "Germany", "de"], ["+49 30 {n7}", "030 {n7}", "+49151{n8}"], ["85.214.132.117", "2a01:238:4200::1"]),
    ("FR", ["FR", "FRA", "France"], ["+33 1 {n2} {n2} {n2} {n2}", "06{n8}"], ["90.84.64.1"]),
    ("GB", ["GB", "GBR", "United Kingdom"], ["+44 20 7946 {n4}", "07700 9{n5}"], ["81.2.69.160"]),
    ("ES", ["ES", "ESP", "Spain"], ["+34 91 {n7}", "6{n8}"], ["80.58.61.250"]),
    ("US", ["US", "USA", "United States"], ["+1 (212) 555-{n4}", "+1 415 555 {n4}"], ["8.8.8.8", "2001:4860:4860::8888"]),
    ("IT", ["IT", "ITA", "Italy"], ["+39 06 {n8}"], ["151.1.1.1"]),
]
_UA = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
]
_PRODUCTS = [("sku-100", "Phone", 499.0), ("sku-200", "Sneakers", 89.9), ("sku-300", "Chair", 129.5), ("sku-400", None, 9.99)]
_PLANS = ["basic", "premium", "family"]
_LOCALES = {"DE": "de-DE", "FR": "fr-FR", "GB": "en-GB", "ES": "es-ES", "US": "en-US", "IT": "it-IT"}
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class SampleFactory:
    """Builds records as the Avro schemas in `avro_schemas/` define them (dicts, timestamps as epoch ms)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def _digits(self, k: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(k))

    def _phone(self, fmt: str) -> str:
        out = fmt
        for k in (8, 7, 5, 4, 2):
            while "{n%d}" % k in out:  # noqa: UP031
                out = out.replace("{n%d}" % k, self._digits(k), 1)  # noqa: UP031
        return out

    def customer(self, *, country: bool = True, identifiers: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        r = self.rng
        a2, spellings, phones, ips = r.choice(_COUNTRIES)
        first, last = r.choice(_FIRST), r.choice(_LAST)
        i = self.n
        email = f" {first}.{last}{i}@{r.choice(_DOMAINS)} ".replace("'", "") if identifiers else None
        if email and r.random() < 0.3:
            email = email.upper()
        phone = self._phone(r.choice(phones)) if identifiers and r.random() < 0.7 else None
        customer = {
            "customer_id": f"cust_{i:07d}" if identifiers and r.random() < 0.8 else None,
            "anonymous_id": str(uuid.UUID(int=r.getrandbits(128))) if identifiers and r.random() < 0.5 else None,
            "email": email,
            "phone": phone,
            "first_name": first,
            "last_name": last,
            "country": r.choice(spellings) if country and r.random() < 0.7 else None,
        }
        has_phone_country = bool(phone and phone.startswith("+"))
        context = {
            "ip_address": r.choice(ips)
            if country and (r.random() < 0.8 or not (customer["country"] or has_phone_country))
            else None,
            "user_agent": r.choice(_UA),
            "page_url": f"https://shop.example.com/p/{r.randint(1, 500)}",
            "referrer": r.choice([None, "https://www.google.com/", "https://news.example.org/a"]),
            "session_id": str(uuid.UUID(int=r.getrandbits(128))),
            "locale": _LOCALES[a2] if country else None,
        }
        return customer, context

    def consent(self, granted: bool | None = True) -> dict[str, Any] | None:
        if granted is None:
            return None
        return {"marketing": granted, "personalisation": self.rng.random() < 0.8, "analytics": self.rng.random() < 0.9}

    def record(self, event: str, **kw: Any) -> dict[str, Any]:
        """One valid record of `event`; keywords: consent_granted, country, identifiers."""
        self.n += 1
        r = self.rng
        head: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "occurred_at": BASE_MS + self.n * 1000 + r.randint(0, 999),
        }
        if event == "market_offer_assignment":
            return {
                **head,
                "MarketGLN": f"{1234567890000 + r.randint(0, 999)}",
                "OfferIDs": [str(r.randint(100, 999)) for _ in range(r.randint(1, 4))],
                "ValidFrom": 20_500 + r.randint(0, 60),
                "ValidTo": 20_600 + r.randint(0, 60),
            }
        customer, context = self.customer(country=kw.get("country", True), identifiers=kw.get("identifiers", True))
        head.update(customer=customer, context=context, consent=self.consent(kw.get("consent_granted", True)))
        day = 20_450 + r.randint(0, 200)
        if event == "purchase_completed":
            items: list[dict[str, Any]] = []
            for _ in range(r.randint(1, 4)):
                pid, name, price = r.choice(_PRODUCTS)
                items.append({"product_id": pid, "product_name": name, "price": price, "quantity": r.randint(1, 3)})
            return {
                **head,
                "order_id": f"ord_{self.n:08d}",
                "order_value": round(sum(i["price"] * i["quantity"] for i in items), 2),
                "currency": r.choice(["EUR", "USD", "GBP"]),
                "items": items,
            }
        if event == "subscription_started":
            return {
                **head,
                "subscription_id": f"sub_{self.n:07d}",
                "plan": r.choice(_PLANS),
                "start_date": day,
                "end_date": day + 365,
                "value": r.choice([9.99, 19.99, 29.99]),
                "currency": "EUR",
                "billing_cycle": r.choice(["MONTHLY", "YEARLY"]),
                "trial": r.random() < 0.2,
            }
        if event == "subscription_canceled":
            return {
                **head,
                "subscription_id": f"sub_{self.n:07d}",
                "plan": r.choice(_PLANS),
                "cancel_date": day,
                "end_date": day + 30,
                "reason": r.choice(["too_expensive", "moved", None]),
                "value": 19.99,
                "currency": "EUR",
            }
        if event == "contract_renewed":
            return {
                **head,
                "contract_id": f"ctr_{self.n:07d}",
                "new_end_date": day + 365,
                "previous_end_date": day,
                "plan": "premium",
            }
        if event == "consent_updated":
            return {
                **head,
                "consent_type": r.choice(["marketing", "personalisation", "email"]),
                "status": r.choice(["granted", "denied", "yes", "no"]),
                "regulation": "GDPR",
                "source": "crm",
            }
        if event == "page_view":
            return {**head, "page_title": r.choice(["Home", "Phone", "Checkout"]), "page_category": "shop"}
        raise ValueError(f"unknown event {event!r}")

    def stream(self, event: str, n: int) -> Iterator[dict[str, Any]]:
        for _ in range(n):
            yield self.record(event)
