"""Audio VAD and image classification on CUDA against the CPU, and their endpoints on a CUDA server."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml

from altlas.audio.decode import decode_audio
from altlas.audio.resample import resample, resample_stream
from altlas.audio.vad import VoiceActivityDetector
from altlas.vision.classifier import ImageClassifier, decode_image

from ..api.conftest import start_server
from ..media_bytes import EFFICIENTNET_WEIGHTS, efficientnet_weights

pytestmark = pytest.mark.gpu
DATA = Path(__file__).resolve().parents[1] / "data"


def speech_clip() -> tuple[np.ndarray, int]:
    samples, rate = decode_audio((DATA / "audio" / "speech_en.wav").read_bytes())
    silence = np.zeros(2 * rate, np.float32)
    return np.concatenate([silence, samples, silence, samples, silence]), rate


def test_vad_on_cuda_agrees_with_the_cpu() -> None:
    samples, rate = speech_clip()
    gpu = VoiceActivityDetector(device=torch.device("cuda"), chunk_seconds=5)  # several pieces side by side
    cpu = VoiceActivityDetector(device=torch.device("cpu"), chunk_seconds=5)
    on_gpu, on_cpu = gpu.probabilities(samples, rate), cpu.probabilities(samples, rate)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-2)  # cuDNN convolutions may run in TF32
    gpu_segments, _ = gpu.segments(samples, rate)
    cpu_segments, _ = cpu.segments(samples, rate)
    assert len(gpu_segments) == len(cpu_segments) >= 2
    for a, b in zip(gpu_segments, cpu_segments, strict=True):
        assert abs(a.start - b.start) <= 0.04 and abs(a.end - b.end) <= 0.04
    assert gpu.segments(np.zeros(rate * 4, np.float32), rate)[0] == []


def test_a_stream_on_cuda_detects_as_the_cpu_does() -> None:
    """Uploads are read a block at a time: pieces side by side in groups (3 pieces of 2 s here)."""
    samples, rate = speech_clip()
    gpu = VoiceActivityDetector(device=torch.device("cuda"), chunk_seconds=2, group_samples=3 * 32_000)
    cpu = VoiceActivityDetector(device=torch.device("cpu"), chunk_seconds=2)
    blocks = [samples[i : i + 7_777] for i in range(0, len(samples), 7_777)]
    on_gpu, read = gpu.stream_probabilities(iter(blocks), rate)
    assert read == len(samples)
    np.testing.assert_allclose(on_gpu, cpu.probabilities(samples, rate), atol=1e-2)  # TF32 aside


@pytest.mark.parametrize("rate", [8_009, 44_101, 383_999])
def test_a_stream_resampled_on_cuda_equals_the_whole_signal_resampled(rate: int) -> None:
    x = torch.randn(rate * 3, generator=torch.Generator().manual_seed(rate)).cuda()
    streamed = torch.cat(list(resample_stream(iter(x.split(65_536)), rate, 16_000)))
    torch.testing.assert_close(streamed, resample(x, rate, 16_000), atol=1e-4, rtol=0)


@pytest.mark.parametrize("rate", [8_009, 22_050, 44_101, 383_999])
def test_resampling_on_cuda_agrees_with_the_cpu_at_odd_rates(rate: int) -> None:
    x = torch.randn(2, rate * 3, generator=torch.Generator().manual_seed(rate))  # two rows at once
    on_gpu = resample(x.cuda(), rate, 16_000)
    assert on_gpu.device.type == "cuda" and on_gpu.shape == (2, 48_000)
    torch.testing.assert_close(on_gpu.cpu(), resample(x, rate, 16_000), atol=1e-4, rtol=0)  # TF32 aside


def test_classifier_on_cuda_agrees_with_the_cpu() -> None:
    gpu = ImageClassifier.load("efficientnet-lite", efficientnet_weights(), torch.device("cuda"), {})
    cpu = ImageClassifier.load("efficientnet-lite", efficientnet_weights(), torch.device("cpu"), {})
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        image = decode_image((DATA / "images" / name).read_bytes())
        on_gpu, on_cpu = gpu.classify(image, 5), cpu.classify(image, 5)
        assert on_gpu[0].index == on_cpu[0].index, (name, on_gpu, on_cpu)
        assert abs(on_gpu[0].score - on_cpu[0].score) < 1e-2


def test_media_endpoints_run_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    registry = {"models": [
        {"name": "silero-vad", "task": "audio-vad", "backend": "silero",
         "versions": {"6": "package:silero_vad/data/silero_vad.jit"}, "load_at_start": True},
        {"name": "efficientnet-lite0", "task": "image-classification", "backend": "efficientnet-lite",
         "versions": {"imagenet": f"package:{EFFICIENTNET_WEIGHTS}"}, "load_at_start": True},
    ]}  # fmt: skip
    (data / "models.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("ALTLAS_DEVICE", "cuda")
    monkeypatch.setenv("ALTLAS_SERVICES", "orchestrator")
    server = start_server(data, tmp_path / "server.log")
    try:
        import soundfile

        samples, rate = speech_clip()
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, rate, format="FLAC")
        vad = httpx.post(
            server.url + "/v1/audio/vad", files={"file": ("a.flac", buffer.getvalue())}, timeout=120
        )
        assert vad.status_code == 200, vad.text
        assert vad.headers["x-altlas-device"].startswith("cuda:0 ") and len(vad.json()["segments"]) >= 2
        photo = (DATA / "images" / "chelsea.jpg").read_bytes()
        label = httpx.post(server.url + "/v1/images/classify", files={"file": ("c.jpg", photo)}, timeout=120)
        assert label.status_code == 200, label.text
        assert label.headers["x-altlas-device"].startswith("cuda:0 ")
        assert "cat" in label.json()["predictions"][0]["label"]
        print("vad", vad.json()["altlas"], "classify", label.json()["altlas"])
    finally:
        server.stop()
