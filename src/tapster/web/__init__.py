"""``tapster web``: a static file and WSGI web server on asyncio.

``WebConfig`` says what to serve, ``WebServer`` serves it over any listener
(its ``protocol`` is an asyncio protocol factory), and ``WebService`` runs it
as a tapster service on one or more endpoints.
"""

from tapster.web._config import Limits, WebConfig
from tapster.web._server import WebServer
from tapster.web._service import WebService

__all__ = ["Limits", "WebConfig", "WebServer", "WebService"]
