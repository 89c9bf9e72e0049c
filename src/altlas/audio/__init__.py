"""Audio: decoding uploads, resampling on the device, and voice-activity detection (Silero VAD)."""

from altlas.audio.decode import decode_audio
from altlas.audio.resample import resample
from altlas.audio.vad import SpeechSegment, VoiceActivityDetector

__all__ = ["SpeechSegment", "VoiceActivityDetector", "decode_audio", "resample"]
