"""OGC WPS 1.0.0 and 2.0 beside the OGC API: the same processes and jobs, in XML.

``/wps`` and ``/{user}/wps`` answer WPS requests for the same user the OGC API tree would
(``api_gateway/deps.py``), through the same adapter (``ogc_prefect``): a WPS job is an
OGC job is a Prefect flow run.

* :mod:`~api_gateway.wps.routes` — the endpoint (KVP GET, XML POST, the 1.0.0 statusLocation);
* :mod:`~api_gateway.wps.request` — a request whatever its version, and the KVP encoding;
* :mod:`~api_gateway.wps.v1`, :mod:`~api_gateway.wps.v2` — each version's XML requests
  and documents;
* :mod:`~api_gateway.wps.service` — the operations, on ``ogc_prefect``'s Processes and Jobs;
* :mod:`~api_gateway.wps.datatypes` — OGC process descriptions and values as WPS data;
* :mod:`~api_gateway.wps.ows` — OWS Common parts both versions share;
* :mod:`~api_gateway.wps.exceptions` — ExceptionReports: codes, HTTP statuses;
* :mod:`~api_gateway.wps.xmlio` — namespaces, the safe parser, the element builder.
"""

from api_gateway.wps.exceptions import exception_response, is_wps_path
from api_gateway.wps.routes import router

__all__ = ["exception_response", "is_wps_path", "router"]
