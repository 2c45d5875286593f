"""The gateway's operating routes: ``GET /metrics`` (Prometheus) and ``GET /ready`` (readiness).

Both are unauthenticated, as scrapers and probes expect: they show counters and actor names,
never rules, records or tokens. Bind the gateway to a private interface (the default is
loopback) when the figures are not for everybody.
"""

from __future__ import annotations

import json

from flask import Flask, Response

from brokerflow.api.metrics import CONTENT_TYPE_LATEST, exposition, registry_for
from brokerflow.api.readiness import Readiness
from brokerflow.api.services import Services


def add_ops_routes(app: Flask, services: Services) -> None:
    registry = registry_for(services.stats, services.latency)
    readiness = Readiness(services.store, services.dead_actors)

    def metrics() -> Response:
        return Response(exposition(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    def ready() -> Response:
        problems = readiness.problems()
        body = {"status": "not ready", "reasons": problems} if problems else {"status": "ready"}
        return Response(json.dumps(body), status=503 if problems else 200, mimetype="application/json")

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    app.add_url_rule("/ready", "ready", ready, methods=["GET"])
