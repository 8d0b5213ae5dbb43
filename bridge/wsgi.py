"""WSGI entry point for production servers: ``gunicorn bridge.wsgi:app``."""

from bridge.config import load_settings
from bridge.logs import configure
from bridge.web import create_app

settings = load_settings()
configure(settings.log_format, settings.log_level.upper())
app = create_app(settings)
