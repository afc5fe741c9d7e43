"""A local OAuth token endpoint (client-credentials grant) and unsigned JWTs, for the OAUTHBEARER tests."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (request number from 1, authorization header, form body) -> (HTTP status, JSON body)
Answer = Callable[[int, str, str], tuple[int, dict[str, Any]]]


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """`alg: none`, the claims, an empty signature (what Kafka's unsecured validator accepts)."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


class TokenEndpoint:
    """POSTs to 127.0.0.1:<port>/token are recorded as (authorization, body) and answered by `answer`."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.answer: Answer = answer or (lambda n, auth, body: (200, {"access_token": f"tok-{n}", "expires_in": 300}))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                auth = self.headers.get("authorization", "")
                outer.requests.append((auth, body))
                status, obj = outer.answer(len(outer.requests), auth, body)
                out = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> TokenEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
