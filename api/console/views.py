"""The console's routes: sign-in and sign-out, then rules, the run log, processes and stats."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for

from brokerflow import clock
from brokerflow.api.console.masking import masked
from brokerflow.api.console.sessions import ConsoleSession, Sessions, same
from brokerflow.api.forwarding import forward_process_command

COOKIE = "bf_console"
SIGNIN_COOKIE = "bf_console_signin"  # the sign-in form's double-submit CSRF value
PAGE_SIZE = 50
RUN_STATUSES = ("success", "failed", "skipped")
RULE_STATUSES = ("active", "disabled", "archived")
TOKEN_MAX_CHARS = 200
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class SignedOut(Exception):
    """The session is gone or its token no longer authenticates: back to the sign-in page."""


class PageError(Exception):
    """A command the page needs was refused: shown on the page, in its words."""


def pretty(value: Any) -> str:
    """JSON for a ``<pre>``; Jinja escapes it like any other text."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _int_arg(name: str) -> int | None:
    text = request.args.get(name, "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _text_arg(name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    text = request.args.get(name, "").strip()[:200] or None
    return text if allowed is None or text in allowed else None


class Console:
    def __init__(self, dispatcher: Any, services: Any, timeout_s: float) -> None:
        self.dispatcher, self.services, self.timeout_s = dispatcher, services, timeout_s
        self.sessions = Sessions(getattr(services, "now_ms", clock.now_ms))

    # -- plumbing --------------------------------------------------------------------------------
    def call(self, session: ConsoleSession, cmd: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        command = {"cmd": cmd, "token": session.token, "params": params or {}}
        # A process another shard or cluster member owns (AVAILABLE_EVENTS): its owner answers.
        reply = forward_process_command(getattr(self.services, "http_forward", None), command)
        if reply is None:
            reply = self.dispatcher.handle(command)
        if isinstance(reply, Future):
            try:
                reply = reply.result(timeout=self.timeout_s)
            except FutureTimeout:
                raise PageError(f"{cmd}: no answer within {self.timeout_s:g} s") from None
        if reply.get("success"):
            return reply.get("body") or {}
        error = reply.get("error") or {}
        if error.get("code") == "UNAUTHENTICATED":
            raise SignedOut()
        raise PageError(f"{error.get('code')}: {error.get('text')}")

    def session(self) -> ConsoleSession:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise SignedOut()
        return session

    def page(self, template: str, session: ConsoleSession, **context: Any) -> Response:
        return make_response(render_template(f"console/{template}", me=session, **context))

    @staticmethod
    def secure(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def signed_out(self, _exc: SignedOut) -> Response:
        response = redirect(url_for("console.signin"))
        response.delete_cookie(COOKIE, path="/console")
        return response

    def page_error(self, exc: PageError) -> Response:
        try:
            session = self.session()
        except SignedOut as signed_out:
            return self.signed_out(signed_out)
        return make_response(render_template("console/error.html", me=session, message=str(exc)), 400)

    # -- sign-in and sign-out --------------------------------------------------------------------
    def signin(self) -> Response:
        if request.method == "GET":
            return self._signin_form(None, 200)
        token = request.form.get("token", "").strip()
        if not same(request.form.get("csrf"), request.cookies.get(SIGNIN_COOKIE)):
            return self._signin_form("The form expired; please sign in again.", 400)
        principal = self.dispatcher.authenticate(token) if 0 < len(token) <= TOKEN_MAX_CHARS else None
        if principal is None:
            return self._signin_form("Unknown or revoked token.", 401)
        session_id = self.sessions.create(token, principal.role, principal.brand)
        response = redirect(url_for("console.rules"), code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", secure=request.is_secure,
                            path="/console")
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    def _signin_form(self, error: str | None, status: int) -> Response:
        csrf = secrets.token_urlsafe(24)
        response = make_response(render_template("console/signin.html", me=None, error=error, csrf=csrf), status)
        response.set_cookie(SIGNIN_COOKIE, csrf, httponly=True, samesite="Strict", secure=request.is_secure,
                            path="/console", max_age=3600)
        return response

    def signout(self) -> Response:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None and not same(request.form.get("csrf"), session.csrf):
            return make_response(render_template("console/error.html", me=session,
                                                 message="Sign-out refused: the form did not come from this page."),
                                 400)
        self.sessions.drop(request.cookies.get(COOKIE))
        response = redirect(url_for("console.signin"), code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- pages -----------------------------------------------------------------------------------
    def home(self) -> Response:
        self.session()
        return redirect(url_for("console.rules"))

    def rules(self) -> Response:
        session = self.session()
        filters = {"brand": _text_arg("brand"), "status": _text_arg("status", RULE_STATUSES)}
        rules = self.call(session, "MngGetWorkflowRules", {k: v for k, v in filters.items() if v})["rules"]
        return self.page("rules.html", session, rules=[masked(rule) for rule in rules], filters=filters,
                         statuses=RULE_STATUSES)

    def runs(self) -> Response:
        session = self.session()
        filters = {"rule_id": _int_arg("rule"), "status": _text_arg("status", RUN_STATUSES),
                   "brand": _text_arg("brand")}
        before = _int_arg("before")
        params = {k: v for k, v in filters.items() if v is not None}
        runs = self.call(session, "MngGetWorkflowRunLog", {**params, "limit": PAGE_SIZE,
                                                           **({"before_id": before} if before else {})})["runs"]
        older = runs[-1]["id"] if len(runs) == PAGE_SIZE else None
        return self.page("runs.html", session, runs=[masked(run) for run in runs], filters=filters,
                         statuses=RUN_STATUSES, before=before, older=older)

    def processes(self) -> Response:
        session = self.session()
        pid = _text_arg("pid")
        process = self.call(session, "AVAILABLE_EVENTS", {"pid": pid}) if pid else None
        recent = [] if pid else self.call(session, "MngGetProcesses", {"limit": PAGE_SIZE})["processes"]
        return self.page("processes.html", session, pid=pid, process=process, recent=recent)

    def stats(self) -> Response:
        session = self.session()
        return self.page("stats.html", session, stats=self.call(session, "MngGetStats"))

    def blueprint(self) -> Blueprint:
        bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                       static_folder="static", static_url_path="/static")
        bp.add_url_rule("", "home", self.home, methods=["GET"], strict_slashes=False)
        bp.add_url_rule("/signin", "signin", self.signin, methods=["GET", "POST"])
        bp.add_url_rule("/signout", "signout", self.signout, methods=["POST"])
        for name in ("rules", "runs", "processes", "stats"):
            bp.add_url_rule(f"/{name}", name, getattr(self, name), methods=["GET"])
        bp.register_error_handler(SignedOut, self.signed_out)
        bp.register_error_handler(PageError, self.page_error)
        bp.after_request(self.secure)
        bp.add_app_template_filter(pretty, "pretty")
        return bp
