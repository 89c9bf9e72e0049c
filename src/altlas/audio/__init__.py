"""Audio: decoding uploads, resampling on the device, and voice-activity detection (Silero VAD)."""

from altlas.audio.decode import AudioFile, decode_audio, open_audio
from altlas.audio.resample import resample, resample_stream
from altlas.audio.vad import SpeechSegment, VoiceActivityDetector

__all__ = [
    "AudioFile",
    "SpeechSegment",
    "VoiceActivityDetector",
    "decode_audio",
    "open_audio",
    "resample",
    "resample_stream",
]
