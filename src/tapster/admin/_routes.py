"""The admin endpoint's paths: probes, metrics, the status page, control actions.

=====================  ==================================================
``GET /livez``         200 while the event loop(s) turn, else 503 (JSON reasons)
``GET /readyz``        200 when traffic may come, else 503 (JSON reasons)
``GET /startupz``      200 once start-up finished, else 503
``GET /metrics``       Prometheus text 0.0.4, OpenMetrics when ``Accept`` asks
``GET /status``        the operator page (HTML, refreshes itself)
``GET /status.json``   the same figures as JSON
``POST /control/...``  reload, reopen-logs, stop, workers (unix socket only)
=====================  ==================================================
"""

from __future__ import annotations

import json
from typing import Any

from tapster.admin._http import Request, Response, text_response
from tapster.admin._page import render_status
from tapster.admin._subject import ControlError, Subject
from tapster.metrics import OPENMETRICS_TYPE, TEXT_TYPE, expose, wants_openmetrics

__all__ = ["ACTIONS", "AdminApp"]

#: The control actions, each ``POST /control/NAME``.
ACTIONS = ("reload", "reopen-logs", "stop", "workers")

_JSON = "application/json"


def json_response(status: int, value: Any) -> Response:
    """A JSON answer."""
    return Response(status, _JSON, json.dumps(value, indent=1).encode("utf-8") + b"\n")


class AdminApp:
    """Answers admin requests about ``subject``; control only when ``control`` is allowed."""

    def __init__(self, subject: Subject, control: bool) -> None:
        self.subject = subject
        self.control_allowed = control

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/control/"):
            return await self._control(request, path.removeprefix("/control/"))
        if request.method not in ("GET", "HEAD"):
            return Response(405, "text/plain; charset=utf-8", b"use GET\n", (("Allow", "GET"),))
        subject = self.subject
        if path == "/livez":
            reasons = subject.not_live()
            return json_response(503 if reasons else 200, {"live": not reasons, "reasons": reasons})
        if path == "/readyz":
            reasons = await subject.not_ready()
            if reasons:
                return json_response(503, {"ready": False, "reasons": reasons})
            return json_response(200, {"ready": True, "reasons": []})
        if path == "/startupz":
            if subject.started():
                return json_response(200, {"started": True, "reasons": []})
            return json_response(503, {"started": False, "reasons": ["start-up under way"]})
        if path == "/metrics":
            openmetrics = wants_openmetrics(request.headers.get("accept", ""))
            body = expose(subject.families(), openmetrics)
            return Response(200, OPENMETRICS_TYPE if openmetrics else TEXT_TYPE, body)
        if path in ("/status", "/status.json", "/"):
            status = subject.status()
            status["ready_reasons"] = await subject.not_ready()
            status["live_reasons"] = subject.not_live()
            if path == "/status.json":
                return json_response(200, status)
            return Response(200, "text/html; charset=utf-8", render_status(status).encode("utf-8"))
        return text_response(404, "not found: try /livez, /readyz, /metrics or /status\n")

    async def _control(self, request: Request, action: str) -> Response:
        if not self.control_allowed:
            return text_response(
                403, "control actions are accepted only on a unix-socket admin endpoint\n"
            )
        if action not in ACTIONS:
            return text_response(404, f"no control action {action!r}: {', '.join(ACTIONS)}\n")
        if request.method != "POST":
            return Response(405, "text/plain; charset=utf-8", b"use POST\n", (("Allow", "POST"),))
        count: int | None = None
        if action == "workers":
            text = request.query.get("count", [""])[0] or request.body.decode("ascii", "replace")
            text = text.strip().removeprefix("count=")
            if not (text.isascii() and text.isdigit()) or int(text) < 1:
                return text_response(400, "workers needs a count, a whole number 1 or more\n")
            count = int(text)
        try:
            message = await self.subject.control(action, count)
        except ControlError as exc:
            return json_response(exc.status, {"done": False, "message": str(exc)})
        return json_response(200, {"done": True, "message": message})
