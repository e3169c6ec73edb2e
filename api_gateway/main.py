"""ASGI entry point: ``uvicorn api_gateway.main:app``."""

from api_gateway.app import create_app

app = create_app()
