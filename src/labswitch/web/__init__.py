"""`labswitch serve`'s HTTP side: a thin FastAPI adapter over the same use cases as the CLI (usecases/)."""

from labswitch.web.app import create_app

__all__ = ["create_app"]
