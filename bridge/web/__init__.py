"""HTTP: the Flask application, its blueprints and the one error-translation table."""

from bridge.web.app import create_app

__all__ = ["create_app"]
