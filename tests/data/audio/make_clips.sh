#!/usr/bin/env bash
# The spoken test clip, made with espeak-ng (Debian package espeak-ng): 22,050 Hz mono 16-bit WAV.
set -euo pipefail
cd "$(dirname "$0")"
espeak-ng -v en -s 150 -w speech_en.wav "Open the browser and take a screenshot of the weather forecast."
