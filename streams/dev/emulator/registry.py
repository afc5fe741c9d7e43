"""A minimal Confluent Schema Registry: the REST calls confluent-kafka's ``SchemaRegistryClient`` makes."""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from streams.dev.emulator.wire import JSON_CT

_SR_CT = "application/vnd.schemaregistry.v1+json"


@dataclass
class _StoredSchema:
    id: int
    guid: str
    schema: str
    schema_type: str
    references: list[dict[str, Any]]


class SchemaRegistry:
    """The subset of the Schema Registry REST API that confluent-kafka's client calls for
    ``register_schema``, ``get_schema``, ``get_schema_by_guid``, ``lookup_schema``,
    ``get_latest_version``, ``get_version``, ``get_versions``, ``get_subjects``,
    ``delete_subject`` and ``get_compatibility``. No compatibility checks are enforced.
    """

    def __init__(self, basic_auth: tuple[str, str] | None = None) -> None:
        self.basic_auth = basic_auth
        self._auth_header = (
            None if basic_auth is None else "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        )
        self.clear()

    def clear(self) -> None:
        self.schemas: list[_StoredSchema] = []
        self.by_key: dict[tuple[str, str, bytes], int] = {}
        self.by_guid: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}  # subject -> schema id per version (index + 1)

    # -- core operations (also used directly by tests)
    @staticmethod
    def _canonical(schema: str, schema_type: str) -> str:
        if schema_type in ("AVRO", "JSON"):
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.dumps(orjson.loads(schema), option=orjson.OPT_SORT_KEYS).decode()
        return schema

    def register(self, subject: str, schema: str, schema_type: str, references: list[dict[str, Any]]) -> int:
        key = (
            schema_type,
            self._canonical(schema, schema_type),
            orjson.dumps(references, option=orjson.OPT_SORT_KEYS),
        )
        schema_id = self.by_key.get(key)
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator-schema-{schema_id}-{key[1]}"))
            self.schemas.append(_StoredSchema(schema_id, guid, schema, schema_type, references))
            self.by_key[key] = schema_id
            self.by_guid[guid] = schema_id
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def lookup(self, subject: str, schema: str, schema_type: str, references: list[dict[str, Any]]) -> int | None:
        key = (
            schema_type,
            self._canonical(schema, schema_type),
            orjson.dumps(references, option=orjson.OPT_SORT_KEYS),
        )
        schema_id = self.by_key.get(key)
        if schema_id is None or schema_id not in self.subjects.get(subject, ()):
            return None
        return schema_id

    def _schema_body(self, stored: _StoredSchema) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema": stored.schema,
            "schemaType": stored.schema_type,
            "guid": stored.guid,
        }
        if stored.references:
            body["references"] = stored.references
        return body

    def _version_body(self, subject: str, version: int) -> dict[str, Any]:
        stored = self.schemas[self.subjects[subject][version - 1] - 1]
        return {"subject": subject, "version": version, "id": stored.id, **self._schema_body(stored)}

    # -- HTTP
    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.Response(status=status, body=orjson.dumps({"error_code": code, "message": message}), content_type=JSON_CT)

    @staticmethod
    def _ok(data: Any) -> web.Response:
        return web.Response(body=orjson.dumps(data), content_type=_SR_CT)

    @web.middleware
    async def auth_middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if self._auth_header is not None and request.headers.get("Authorization") != self._auth_header:
            resp = self._error(401, 40101, "Unauthorized")
            resp.headers["WWW-Authenticate"] = 'Basic realm="schema-registry"'
            return resp
        result: web.StreamResponse = await handler(request)
        return result

    async def _schema_request(self, request: web.Request) -> tuple[str, str, list[dict[str, Any]]] | web.Response:
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return self._error(422, 42201, f"Invalid schema request: {exc}")
        if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
            return self._error(422, 42201, "Invalid schema request: 'schema' (string) is required")
        schema_type = (data.get("schemaType") or "AVRO").upper()
        if schema_type not in ("AVRO", "JSON", "PROTOBUF"):
            return self._error(422, 42201, f"Invalid schema type {schema_type}")
        references = data.get("references") or []
        if not isinstance(references, list):
            return self._error(422, 42201, "Invalid schema request: 'references' must be an array")
        if schema_type == "AVRO" and not references:
            problem = _avro_problem(data["schema"])
            if problem is not None:
                return self._error(422, 42201, f"Invalid schema: {problem}")
        return data["schema"], schema_type, references

    async def post_version(self, request: web.Request) -> web.Response:
        parsed = await self._schema_request(request)
        if isinstance(parsed, web.Response):
            return parsed
        return self._ok({"id": self.register(request.match_info["subject"], *parsed)})

    async def post_lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        parsed = await self._schema_request(request)
        if isinstance(parsed, web.Response):
            return parsed
        if subject not in self.subjects:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        schema_id = self.lookup(subject, *parsed)
        if schema_id is None:
            return self._error(404, 40403, "Schema not found")
        version = self.subjects[subject].index(schema_id) + 1
        return self._ok(self._version_body(subject, version))

    async def get_schema_by_id(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        schema_id = int(raw) if raw.isdigit() else 0
        if not 1 <= schema_id <= len(self.schemas):
            return self._error(404, 40403, f"Schema {raw} not found")
        return self._ok(self._schema_body(self.schemas[schema_id - 1]))

    async def get_schema_by_guid(self, request: web.Request) -> web.Response:
        schema_id = self.by_guid.get(request.match_info["guid"])
        if schema_id is None:
            return self._error(404, 40403, f"Schema {request.match_info['guid']} not found")
        return self._ok(self._schema_body(self.schemas[schema_id - 1]))

    async def get_subjects(self, request: web.Request) -> web.Response:
        return self._ok(sorted(self.subjects))

    async def get_versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if subject not in self.subjects:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        return self._ok(list(range(1, len(self.subjects[subject]) + 1)))

    async def get_version(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self.subjects.get(subject)
        if versions is None:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        raw = request.match_info["version"]
        try:
            version = len(versions) if raw in ("latest", "-1") else int(raw)
        except ValueError:
            return self._error(422, 42202, f"Invalid version {raw!r}")
        if not 1 <= version <= len(versions):
            return self._error(404, 40402, f"Version {raw} not found.")
        return self._ok(self._version_body(subject, version))

    async def delete_subject(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self.subjects.pop(subject, None)
        if versions is None:
            return self._error(404, 40401, f"Subject '{subject}' not found.")
        return self._ok(list(range(1, len(versions) + 1)))

    async def get_types(self, request: web.Request) -> web.Response:
        return self._ok(["AVRO", "JSON", "PROTOBUF"])

    async def get_config(self, request: web.Request) -> web.Response:
        return self._ok({"compatibilityLevel": "NONE"})

    async def root(self, request: web.Request) -> web.Response:
        return self._ok({})

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth_middleware])
        app.router.add_get("/", self.root)
        app.router.add_get("/subjects", self.get_subjects)
        app.router.add_post("/subjects/{subject}/versions", self.post_version)
        app.router.add_get("/subjects/{subject}/versions", self.get_versions)
        app.router.add_get("/subjects/{subject}/versions/{version}", self.get_version)
        app.router.add_post("/subjects/{subject}", self.post_lookup)
        app.router.add_delete("/subjects/{subject}", self.delete_subject)
        app.router.add_get("/schemas/ids/{id}", self.get_schema_by_id)
        app.router.add_get("/schemas/guids/{guid}", self.get_schema_by_guid)
        app.router.add_get("/schemas/types", self.get_types)
        app.router.add_get("/config", self.get_config)
        return app


def _avro_problem(schema: str) -> str | None:
    try:
        parsed = orjson.loads(schema)
    except orjson.JSONDecodeError:
        # a bare primitive name such as "string" is not JSON but a valid Avro schema
        parsed = schema
    try:
        import fastavro

        fastavro.parse_schema(parsed)
    except ImportError:  # pragma: no cover - fastavro is a project dependency
        return None
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        return str(exc)
    return None


REGISTRY_KEY: web.AppKey[SchemaRegistry] = web.AppKey("emulator_registry", SchemaRegistry)
