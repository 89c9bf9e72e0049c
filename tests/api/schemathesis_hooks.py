"""Schemathesis hooks of tests/api/test_schemathesis_api.py (`st` loads them: SCHEMATHESIS_HOOKS).

A request that names a model takes, about half the time, a model the test server serves, so
that the run reaches the models and not only the 404 of a name no server knows."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

# path -> a model of the default registry that serves it
MODELS = {
    "/v1/embeddings": "all-minilm-l6-v2",
    "/v1/completions": "smollm2-135m-instruct",
    "/v1/chat/completions": "smollm2-135m-instruct",
}


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    model = MODELS.get(context.operation.path)
    # Any string is a valid "model", so a body stays as valid or invalid as it was.
    if model is None or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return st.just(body)
    return st.sampled_from([body, {**body, "model": model}])
