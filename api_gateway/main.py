"""ASGI entry point: ``uvicorn api_gateway.main:app``."""

from api_gateway.app import create_app
from core.settings import get_settings
from core.tenancy import check_mode

check_mode(get_settings())  # multi-tenant mode needs the tool sandbox
app = create_app()
