"""The worker's HTTP side door: `/metrics` (Prometheus text format) and `/healthz` (JSON)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

logger = logging.getLogger(__name__)

HealthProbe = Callable[[], tuple[bool, dict[str, Any]]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics http: " + format, *args)


def metrics_app(probe: HealthProbe) -> Callable[..., Iterable[bytes]]:
    prometheus = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, body = probe()
            data = json.dumps(body).encode()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]
        return prometheus(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve_metrics(host: str, port: int, probe: HealthProbe) -> WSGIServer:
    """Serve /metrics and /healthz from a daemon thread; returns the server (for tests)."""
    server = make_server(
        host, port, metrics_app(probe), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    logger.info("metrics on http://%s:%d/metrics, health on /healthz", host, server.server_port)
    return server
