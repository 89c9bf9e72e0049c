"""Decoding uploads within bounds: audio sample rates outside 1,000-384,000 Hz are refused before
decoding; images are decoded only as far as classification needs (the centre cut to 2:1, reduced
while the short side stays at the model's), and images over the pixel limit are refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from altlas.audio.decode import (
    MAX_SAMPLE_RATE,
    MAX_SAMPLES,
    MIN_SAMPLE_RATE,
    UnsupportedAudioError,
    decode_audio,
    open_audio,
)
from altlas.audio.vad import FRAME, SAMPLE_RATE, VoiceActivityDetector
from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.vision.classifier import MAX_PIXELS, ImageClassifier, central_box, read_image

from ..media_bytes import flac_silence, png, wav

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"


@pytest.mark.parametrize("rate", [1, 999, 384_001, 2**31 - 1])
def test_audio_at_a_rate_outside_the_range_is_refused_naming_the_range(rate: int) -> None:
    with pytest.raises(UnsupportedAudioError) as caught:
        decode_audio(wav(np.zeros(100), rate), field="input.audio_base64")
    assert caught.value.field == "input.audio_base64"
    assert f"{rate:,} Hz" in caught.value.message and "1,000 to 384,000 Hz" in caught.value.message


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, 8_009, 22_050, MAX_SAMPLE_RATE])
def test_audio_at_any_rate_in_the_range_decodes(rate: int) -> None:
    tone = np.sin(np.arange(rate // 10) * 0.01)
    samples, got = decode_audio(wav(tone, rate))
    assert got == rate and len(samples) == len(tone)
    np.testing.assert_allclose(samples, tone, atol=1e-4)


@pytest.mark.parametrize(
    ("rate", "channels", "seconds", "words"),
    [(384_000, 8, 60.0, "184,320,000 samples (8 channels); the limit is 57,600,000"),
     (384_000, 8, 18.75 + 1 / 384_000, "57,600,008 samples"),
     (1_000, 1, 3600 + 1, "is 3,601 s long; the limit is 3,600 s")],
)  # fmt: skip
def test_audio_over_the_length_or_sample_limit_is_too_large_before_it_is_decoded(
    rate: int, channels: int, seconds: float, words: str
) -> None:
    data = flac_silence(rate, channels, seconds)  # 200 KB, 60 KB, 100 KB: FLAC packs silence tight
    with pytest.raises(InputTooLargeError) as caught:
        open_audio(data)
    assert caught.value.field == "file" and words in caught.value.message
    assert MAX_SAMPLES == 3600 * 16_000


def test_audio_at_the_limits_opens_without_being_decoded() -> None:
    audio = open_audio(flac_silence(384_000, 8, 18.75))  # 57,600,000 samples: 230 MB decoded
    assert (audio.rate, audio.frames, audio.channels) == (384_000, 7_200_000, 8)


def test_samples_that_are_not_finite_are_refused_when_read_naming_the_field() -> None:
    import soundfile

    samples = np.zeros(300_000, dtype=np.float32)  # several blocks, the bad one not the first
    samples[200_000] = np.nan
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16_000, format="WAV", subtype="FLOAT")
    audio = open_audio(buffer.getvalue(), field="input.audio_base64")
    with pytest.raises(InvalidInputError) as caught:
        list(audio.blocks())
    assert caught.value.field == "input.audio_base64" and "NaN" in caught.value.message


def test_channels_are_averaged() -> None:
    import soundfile

    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (200_000, 3)).astype(np.float32)  # several decoding blocks
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, 22_050, format="WAV", subtype="FLOAT")
    samples, rate = decode_audio(buffer.getvalue())
    assert rate == 22_050 and samples.dtype == np.float32 and samples.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(samples, stereo.mean(axis=1), atol=1e-7)


def test_the_detector_reads_audio_at_an_odd_rate() -> None:
    detector = VoiceActivityDetector()
    samples, rate = decode_audio(wav(np.zeros(8_009 * 3), 8_009))
    probabilities = detector.probabilities(samples, rate)
    assert len(probabilities) == -(-3 * SAMPLE_RATE // FRAME) and (probabilities < 0.5).all()


@pytest.mark.parametrize(
    ("size", "box"),
    [((2000, 1), (999, 0, 1001, 1)), ((1, 65000), (0, 32499, 1, 32501)), ((1001, 2), (498, 0, 503, 2)),
     ((320, 213), (0, 0, 320, 213)), ((100, 50), (0, 0, 100, 50)), ((1000, 200), (300, 0, 700, 200))],
)  # fmt: skip
def test_the_central_box_is_at_most_two_to_one_around_the_same_centre(
    size: tuple[int, int], box: tuple[int, int, int, int]
) -> None:
    assert central_box(*size) == box
    left, top, right, bottom = box
    assert (left + right) / 2 == size[0] / 2 or right - left == size[0] - 1  # odd leftover: half a pixel
    assert (top + bottom) / 2 == size[1] / 2 or bottom - top == size[1] - 1


@pytest.mark.parametrize(("width", "height", "shape"), [(2000, 1, (1, 2, 3)), (1, 65000, (2, 1, 3))])
def test_a_thin_image_is_cut_to_its_centre_before_anything_is_scaled(
    width: int, height: int, shape: tuple[int, int, int]
) -> None:
    decoded = read_image(png(width, height), short_side=256)
    assert decoded.pixels.shape == shape and (decoded.width, decoded.height) == (width, height)
    classifier = ImageClassifier(None, [], torch.device("cpu"))
    assert classifier.preprocess(decoded.pixels).shape == (1, 3, 224, 224)


def test_a_large_image_is_reduced_while_its_short_side_stays_twice_the_models() -> None:
    decoded = read_image(png(5000, 4000, "RGBA"), short_side=256)
    assert (decoded.width, decoded.height) == (5000, 4000)
    assert decoded.pixels.shape == (572, 715, 3)  # reduced 7 x: the short side still twice 256


def test_a_large_jpeg_decodes_at_a_fraction_of_its_size() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(buffer, format="JPEG")
    decoded = read_image(buffer.getvalue(), short_side=256)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert decoded.pixels.shape == (750, 1000, 3)  # 1/4 scale: the short side still twice 256
    assert abs(int(decoded.pixels[100, 100, 0]) - 200) < 8


@pytest.mark.parametrize(("width", "height"), [(30_000, 30_000), (6_000, 6_000), (MAX_PIXELS + 1, 1)])
def test_an_image_over_the_pixel_limit_is_too_large_before_it_is_decoded(width: int, height: int) -> None:
    for short_side in (None, 256):
        with pytest.raises(InputTooLargeError) as caught:
            read_image(png(width, height, "1"), "input.image_base64", short_side=short_side)
        assert caught.value.field == "input.image_base64" and "25,000,000 pixels" in caught.value.message


def test_cutting_to_the_centre_first_changes_nothing_the_model_sees() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(200, 1000, 3), dtype=np.uint8)  # 5:1; kept: the central 400 x 200
    classifier = ImageClassifier(None, [], torch.device("cpu"))
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    resized = F.interpolate(pixels, size=(256, 1280), mode="bilinear", antialias=True, align_corners=False)
    whole = (resized[..., 16:240, 528:752] - classifier.mean) / classifier.std  # the recipe, uncut
    torch.testing.assert_close(classifier.preprocess(image), whole, atol=1e-5, rtol=0)


def test_a_reduced_decode_gives_the_model_nearly_the_same_pixels() -> None:
    from PIL import Image

    with Image.open(IMAGES / "chelsea.jpg") as photo:
        buffer = io.BytesIO()
        photo.resize((320 * 8, 213 * 8), Image.Resampling.BICUBIC).save(buffer, format="PNG")
    classifier = ImageClassifier(None, [], torch.device("cpu"))
    whole = read_image(buffer.getvalue()).pixels
    reduced = classifier.decode(buffer.getvalue()).pixels
    assert whole.shape == (1704, 2560, 3) and reduced.shape == (568, 854, 3)  # reduced 3 x
    difference = (classifier.preprocess(reduced) - classifier.preprocess(whole)).abs()
    assert difference.mean() < 0.02 and difference.max() < 0.5, (difference.mean(), difference.max())


@pytest.mark.parametrize(
    ("width", "height", "mode"), [(3001, 2000, "RGB"), (999, 3333, "RGBA"), (5000, 1200, "L")]
)
def test_decoding_in_strips_gives_the_pixels_of_one_whole_reduction(
    width: int, height: int, mode: str
) -> None:
    from PIL import Image

    rng = np.random.default_rng(width)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    image = Image.fromarray(rng.integers(0, 256, (height, width, channels), dtype=np.uint8).squeeze(), mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    box = central_box(width, height)
    factor = max(1, min(box[2] - box[0], box[3] - box[1]) // 512)
    expected = np.asarray(image.convert("RGB").reduce(factor, box))
    np.testing.assert_array_equal(read_image(buffer.getvalue(), short_side=256).pixels, expected)
