#!/usr/bin/env bash
# Run on a GPU machine (the device tool) from the repo root: GPU tests, doctor, embedding benchmarks.
# Logs go to $OUT (or ./gpu-out). Needs a model folder in ALTLAS_TEST_MODEL (e.g. an fp16 copy of
# all-MiniLM-L6-v2, since the shipped package is too large to carry) and PYTHONPATH=src.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda, "python", sys.version.split()[0])'
  python3 -m altlas doctor
  python3 -m altlas doctor --json
} 2>&1 | tee "$OUT/doctor.txt"
python3 -m pytest -q -o filterwarnings=ignore::DeprecationWarning -p no:cacheprovider \
  tests/gpu tests/unit/test_embeddings.py 2>&1 | tee "$OUT/gpu-tests.txt"
python3 bench/embeddings.py --device cuda --model "$ALTLAS_TEST_MODEL" --json "$OUT/bench-embeddings.json" \
  "$@" 2>&1 | grep -v -i "warn" | tee "$OUT/bench-embeddings.txt"
python3 bench/embeddings.py --device cuda --model "$ALTLAS_TEST_MODEL" --gpu-memory-gb 8 --skip-st \
  --sizes 100000 --cpu-sizes --json "$OUT/bench-embeddings-8gb.json" 2>&1 | grep -v -i "warn" | tee "$OUT/bench-8gb.txt"
