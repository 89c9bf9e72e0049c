"""Contract tests of the OpenAPI document (issue 16, item 15): every route declares its error
answers in the one error shape, ids declare their real format, probes take HEAD."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from altlas.api.admission import error_body
from altlas.api.app import create_app
from altlas.api.schemas import ERROR_RESPONSES, ErrorResponse
from altlas.errors import InvalidInputError
from altlas.jobs.store import check_job_id
from altlas.settings import Settings
from altlas.storage.plan_store import check_plan_id

ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi") / "data"))
    document: dict[str, Any] = app.openapi()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_operation_declares_its_errors_in_the_error_shape(spec: dict[str, Any]) -> None:
    expected = {str(status) for status in ERROR_RESPONSES}
    assert {"400", "401", "403", "404", "408", "413", "415", "422", "429", "500", "503", "504"} <= expected
    for method, path, op in operations(spec):
        responses = op["responses"]
        assert expected <= set(responses), (method, path, sorted(responses))
        for status in expected - ({"503"} if path == "/readyz" else set()):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (method, path, status, schema)
    # FastAPI's own 422 body ({"detail": [...]}) is never what the server sends
    assert not {"HTTPValidationError", "ValidationError"} & set(spec["components"]["schemas"])


def test_the_declared_error_shape_is_the_one_the_server_writes(spec: dict[str, Any]) -> None:
    for param in ("messages[0].content", None):
        ErrorResponse.model_validate(error_body("a message", param, "invalid_value"), strict=True)
    schema = spec["components"]["schemas"]["ErrorDetail"]
    assert set(schema["required"]) == {"message", "type", "param", "code"}


def test_readiness_declares_its_own_503(spec: dict[str, Any]) -> None:
    for method in ("get", "head"):
        answer = spec["paths"]["/readyz"][method]["responses"]["503"]
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}


def test_probes_take_head(spec: dict[str, Any]) -> None:
    for path in ("/healthz", "/readyz"):
        assert {"get", "head"} <= set(spec["paths"][path]), path


def _path_parameter(spec: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    params = spec["paths"][path][method]["parameters"]
    schema: dict[str, Any] = next(p["schema"] for p in params if p["name"] == name and p["in"] == "path")
    return schema


def _accepts(check: Any, value: str) -> bool:
    try:
        check(value)
    except InvalidInputError:
        return False
    return True


IDS = [
    uuid.uuid4().hex,
    uuid.uuid4().hex.upper(),
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    "{" + str(uuid.uuid4()) + "}",
    "urn:uuid:" + str(uuid.uuid4()),
    uuid.uuid4().hex[:31],
    uuid.uuid4().hex + "0",
    uuid.uuid4().hex + "\n",
    "g" * 32,
    "",
    "..",
    "not-an-id",
]


def test_job_ids_declare_the_store_s_own_rule(spec: dict[str, Any]) -> None:
    for path, methods in (("/v1/jobs/{job_id}", ("get", "delete")), ("/v1/jobs/{job_id}/result", ("get",))):
        for method in methods:
            schema = _path_parameter(spec, path, method, "job_id")
            assert schema["type"] == "string"
            for value in IDS:
                declared = re.fullmatch(schema["pattern"].removeprefix("^").removesuffix("$"), value)
                assert bool(declared) == _accepts(check_job_id, value), (path, value)


def _is_uuid(value: str) -> bool:
    """JSON Schema's format "uuid" (RFC 9562's string form: 8-4-4-4-12 hex digits, any case)."""
    return re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value) is not None


def test_plan_ids_declare_the_store_s_own_rule(spec: dict[str, Any]) -> None:
    for method in ("get", "delete"):
        schema = _path_parameter(spec, "/v1/alt-files/{plan_id}", method, "plan_id")
        assert schema["type"] == "string" and schema["format"] == "uuid"
    for value in IDS:
        assert _is_uuid(value) == _accepts(check_plan_id, value), value
