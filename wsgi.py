"""The WSGI entry point: ``gunicorn wsgi:app`` (configured by gunicorn.conf.py)."""

from app import create_app

app = create_app()
