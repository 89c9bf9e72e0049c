"""Turn a model source into a folder transformers loads fast: GGUF files are converted once.

Reading a GGUF file means de-quantising every tensor and rebuilding the tokenizer from its
metadata (half a minute for SmolLM2-135M on two cores); the converted weights, config and
tokenizer go to `<cache dir>/<file stem>-<key>/` as safetensors, keyed by the file's path,
size and modification time, and later loads read that folder in well under a second. The
conversion writes into a temporary folder renamed into place, so a crash never leaves a
half-written cache entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from altlas.errors import InvalidInputError

__all__ = ["model_folder"]

log = logging.getLogger("altlas.generation")


def model_folder(source: Path, cache_dir: Path) -> Path:
    """A folder with config.json, safetensors weights and a tokenizer for `source`
    (such a folder already, or a .gguf file, converted on first use)."""
    if source.is_dir():
        if not (source / "config.json").exists():
            raise InvalidInputError(
                f"{source} has no config.json (a transformers model folder)", field="source"
            )
        return source
    if source.suffix.lower() != ".gguf":
        raise InvalidInputError(
            f"{source.name}: expected a .gguf file or a transformers folder", field="source"
        )
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir / f"{source.stem}-{key}"
    if (target / "model.safetensors").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        log.info("converting GGUF to safetensors", extra={"source": str(source), "cache": str(target)})
        _convert_gguf(source, work)
        try:
            os.rename(work, target)
        except OSError:  # another process finished the same conversion first
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _convert_gguf(source: Path, out: Path) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise InvalidInputError(
            f"cannot read {source.name} as a GGUF causal LM: {exc}", field="source"
        ) from None
    config = model.config
    if hasattr(config, "quantization_config"):  # the weights are de-quantised now
        delattr(config, "quantization_config")
    config.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"))  # handles the tied embedding / output weights
    tokenizer.save_pretrained(out)
