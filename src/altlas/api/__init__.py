"""The HTTP doors of altlas: one FastAPI server, each service a router that can also run alone."""

from altlas.api.app import create_app

__all__ = ["create_app"]
