"""The HTTP doors of altlas: one FastAPI server, each service a router that can also run alone.

`create_app` is imported on first use, so that importing the package (its schemas, its
admission layer) costs nothing of the app's.
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from altlas.api.app import create_app

        return create_app
    raise AttributeError(f"module 'altlas.api' has no attribute {name!r}")
