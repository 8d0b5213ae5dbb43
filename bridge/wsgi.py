"""WSGI entry point for production servers: ``gunicorn bridge.wsgi:app``."""

from bridge.web import create_app

app = create_app()
