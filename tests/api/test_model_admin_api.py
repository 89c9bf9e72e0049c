"""Model administration over HTTP (issue 16, items 6 and 10), against a real server of its own
with API keys, admin keys and a model root: who may register, load, unload and activate; which
files a registration may name; the bounds on a registration's options; and a registry that a
bad registration leaves as it was."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from altlas.errors import InvalidInputError
from altlas.orchestrator.registry import Registry

from .conftest import Server, start_server

USER_KEY = "user-key-3c9e1f07"
ADMIN_KEY = "admin-key-b71d20e5"
USER = {"Authorization": f"Bearer {USER_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
IMAGE = (Path(__file__).resolve().parents[1] / "data" / "images" / "coffee.jpg").read_bytes()
SECRET = "root:x:0:0:do-not-show-this-line"


@dataclass
class Admin:
    server: Server
    models: Path  # <data dir>/models
    root: Path  # the folder ALTLAS_MODEL_ROOTS names
    outside: Path  # a folder outside both

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=120, headers=headers or {})


def tiny_classifier(path: Path, seed: int) -> None:
    """A TorchScript image classifier of three classes, a few hundred bytes."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 3))
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13; users still bring it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model).save(str(path))


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    tmp = tmp_path_factory.mktemp("model-admin")
    data, root, outside = tmp / "data", tmp / "root", tmp / "outside"
    for folder in (data / "models", root, outside):
        folder.mkdir(parents=True)
    (data / "models.yaml").write_text("models: []\n")  # nothing to load at start
    tiny_classifier(data / "models" / "tiny.pt", seed=0)
    tiny_classifier(root / "tiny-b.pt", seed=1)
    (data / "models" / "garbage.pt").write_text(SECRET + "\n")  # allowed, but no model
    (outside / "secret.pt").write_text(SECRET + "\n")
    env = {
        "ALTLAS_API_KEYS": USER_KEY,
        "ALTLAS_ADMIN_KEYS": ADMIN_KEY,
        "ALTLAS_MODEL_ROOTS": str(root),
        "ALTLAS_SERVICES": "orchestrator",
        "ALTLAS_DEVICE": "cpu",
    }
    server = start_server(data, tmp / "server.log", env)
    try:
        yield Admin(server, data / "models", root, outside)
    finally:
        server.stop()


def spec(name: str, source: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "task": "image-classification", "backend": "torchscript",
            "versions": {"1": source}, "options": {"size": 32}, **extra}  # fmt: skip


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def register(admin: Admin, body: dict[str, Any]) -> httpx.Response:
    """POST /v1/models with the admin key; NaN as JavaScript writes it (the server's JSON reads it)."""
    with admin.client(ADMIN) as client:
        return client.post(
            "/v1/models", content=json.dumps(body), headers={"content-type": "application/json"}
        )


def test_an_ordinary_key_may_not_administer_models(admin: Admin) -> None:
    assert register(admin, spec("guarded", "models/tiny.pt")).status_code == 201
    routes = ["/v1/models", "/v1/models/guarded/load", "/v1/models/guarded/unload",
              "/v1/models/guarded/versions/1/activate"]  # fmt: skip
    with admin.client(USER) as client:
        for route in routes:
            body = spec("sneaky", "models/tiny.pt") if route == "/v1/models" else None
            refused = client.post(route, json=body)
            assert refused.status_code == 403, (route, refused.text)
            error = error_of(refused)
            assert error["param"] == "authorization" and error["code"] == "admin_key_required"
            assert refused.headers["x-request-id"]
        assert client.get("/v1/models/sneaky").status_code == 404  # nothing was registered
        assert client.get("/v1/models/guarded").json()["altlas"]["status"] == "unloaded"  # nor loaded
        assert client.get("/v1/models").status_code == 200  # reading stays open to every key
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Basic {ADMIN_KEY}"}):
        with admin.client(headers) as client:
            for route in routes:
                refused = client.post(route, json=spec("sneaky", "models/tiny.pt"))
                assert refused.status_code == 401, (route, headers, refused.text)
                assert error_of(refused)["param"] == "authorization"
                assert refused.headers["www-authenticate"] == "Bearer"


def test_an_admin_key_registers_loads_activates_and_unloads(admin: Admin) -> None:
    body = spec("tiny", "models/tiny.pt")
    body["versions"]["b"] = str(admin.root / "tiny-b.pt")  # a root of ALTLAS_MODEL_ROOTS
    with admin.client(ADMIN) as client:
        registered = client.post("/v1/models", json=body)
        assert registered.status_code == 201, registered.text
        loaded = client.post("/v1/models/tiny/load")
        assert loaded.status_code == 200 and loaded.json()["altlas"]["status"] == "loaded", loaded.text
        activated = client.post("/v1/models/tiny/versions/b/activate")
        assert activated.status_code == 200, activated.text
        assert activated.json()["altlas"]["loaded_version"] == "b"
    with admin.client(USER) as client:  # an ordinary key uses the model the admin registered
        classified = client.post("/v1/images/classify", files={"file": ("c.jpg", IMAGE)},
                                 data={"model": "tiny", "top_k": "3"})  # fmt: skip
        assert classified.status_code == 200, classified.text
        assert len(classified.json()["predictions"]) == 3
    with admin.client(ADMIN) as client:
        unloaded = client.post("/v1/models/tiny/unload")
        assert unloaded.status_code == 200 and unloaded.json()["altlas"]["status"] == "unloaded"


def test_sources_outside_the_roots_get_one_answer_whether_or_not_they_exist(admin: Admin) -> None:
    models, outside = admin.models, admin.outside
    (models / "to-passwd.pt").symlink_to("/etc/passwd")
    (models / "to-secret.pt").symlink_to(outside / "secret.pt")
    (models / "to-nowhere.pt").symlink_to(outside / "nope.pt")
    (models / "to-outside").symlink_to(outside, target_is_directory=True)
    sources = [
        "/etc/passwd",  # exists
        "/etc/nope.onnx",  # does not
        str(outside / "secret.pt"),
        str(models / ".." / ".." / "outside" / "secret.pt"),
        str(models / ".." / ".." / "outside" / "nope.pt"),
        "models/../models.yaml",  # relative to the data dir: the registry itself
        "../server.log",
        "models/to-passwd.pt",  # links under the root that lead out of it
        "models/to-secret.pt",
        "models/to-nowhere.pt",
        "models/to-outside/secret.pt",
        "models/to-outside/nope.pt",
        "~/.bashrc",
        "package:altlas/../../../../../../etc/passwd",  # out of an installed package's folder
    ]
    messages = set()
    for source in sources:
        refused = register(admin, spec("outsider", source))
        assert refused.status_code == 422, (source, refused.text)
        error = error_of(refused)
        assert error["param"] == "body.versions.1", source
        messages.add(error["message"])
    assert len(messages) == 1, messages  # the same words whether the file exists or not
    (message,) = messages
    assert "exist" not in message and "passwd" not in message and "Protobuf" not in message
    with admin.client(ADMIN) as client:
        assert client.get("/v1/models/outsider").status_code == 404


def test_a_file_under_the_roots_that_is_no_model_fails_without_quoting_the_loader(admin: Admin) -> None:
    assert register(admin, spec("garbage", "models/garbage.pt")).status_code == 201
    with admin.client(ADMIN) as client:
        failed = client.post("/v1/models/garbage/load")
        status = client.get("/v1/models/garbage").json()["altlas"]
    assert failed.status_code == 503, failed.text
    message = error_of(failed)["message"]
    assert message == (
        "model: model 'garbage' failed to load: garbage.pt could not be loaded as a torchscript "
        "image-classification model; the server's log says why"
    )
    assert status["status"] == "failed" and SECRET not in status["error"]
    assert "PytorchStreamReader" not in status["error"]  # the loader's words stay in the log


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_deeply_nested_registration_leaves_the_registry_working(admin: Admin) -> None:
    for depth in (900, 12):  # the body; one a general JSON depth limit may let through
        refused = register(admin, spec("deep", "models/tiny.pt", options=nested(depth)))
        assert refused.status_code == 422, refused.text
        param = error_of(refused)["param"]  # the body (the registry's check) or the field (the HTTP layer's)
        assert param == "body" or param.startswith("options.a.a"), param
    with admin.client(ADMIN) as client:
        assert client.get("/v1/models/deep").status_code == 404
        body = spec("after", "models/tiny.pt")
        body["versions"]["2"] = "models/tiny.pt"
        registered = client.post("/v1/models", json=body)
        assert registered.status_code == 201, registered.text
        activated = client.post("/v1/models/after/versions/2/activate")
        assert activated.status_code == 200 and activated.json()["altlas"]["active_version"] == "2"
        loaded = client.post("/v1/models/after/load")
        assert loaded.status_code == 200 and loaded.json()["altlas"]["loaded_version"] == "2", loaded.text
    saved = yaml.safe_load((admin.server.data_dir / "models.yaml").read_text())
    assert "deep" not in [m["name"] for m in saved["models"]]
    assert next(m for m in saved["models"] if m["name"] == "after")["active"] == "2"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_batch_tokens", 10**12),
        ("forward_batch_tokens", 10**12),
        ("max_wait_ms", 1e9),
        ("max_wait_ms", math.nan),
        ("max_queue", 10**9),
        ("spill_queue_depth", 10**9),
        ("spill_wait_ms", 1e12),
        ("max_context", 10**9),
        ("max_sequences", 10**6),
        ("kv_cache_tokens", 10**12),
        ("chunk_seconds", 1e7),
        ("cpu_threads", 10**5),
        ("size", 10**6),
        ("mean", [0.5, 0.5, 1e300]),
        ("std", [1e-300, 1, 1]),
        ("size", "32"),
        ("unheard_of", 1),
    ],
)
def test_numeric_options_are_bounded(admin: Admin, option: str, value: Any) -> None:
    refused = register(admin, spec("bounded", "models/tiny.pt", options={"size": 32, option: value}))
    assert refused.status_code == 422, refused.text
    assert error_of(refused)["param"] == f"body.options.{option}"
    with admin.client(ADMIN) as client:
        assert client.get("/v1/models/bounded").status_code == 404


def test_the_registry_file_is_held_to_the_same_rules(tmp_path: Path) -> None:
    """A registry file (the server's own configuration) with options nested too deep, or out of
    bounds, stops nothing but the read: a clear error naming the entry's field."""
    path = tmp_path / "models.yaml"
    entry = "models:\n  - {name: m, task: audio-vad, versions: {'1': m.jit}, options: %s}\n"
    cases = [
        ("{a: " * 50 + "{}" + "}" * 50, "models[0]"),
        ("{chunk_seconds: 1000000000}", "models[0].options.chunk_seconds"),
    ]
    for options, field in cases:
        path.write_text(entry % options)
        with pytest.raises(InvalidInputError) as raised:
            Registry(path)
        assert raised.value.field == field
    path.write_text("models:\n  - options: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(InvalidInputError) as raised:  # deeper than the YAML parser recurses
        Registry(path)
    assert raised.value.field == "models.yaml"
    assert os.path.getsize(path) > 100_000  # never overwritten
