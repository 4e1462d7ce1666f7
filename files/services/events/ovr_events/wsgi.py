"""gunicorn entry point: gunicorn ovr_events.wsgi:app (settings from the environment)."""

from .api import create_app
from .config import load_settings

app = create_app(load_settings())
