"""One router per OGC resource, assembled by :func:`api_gateway.app.create_app`."""
