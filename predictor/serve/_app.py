"""The web application: the JSON API, the page, and the boundary every request passes first.

A body over the size limit gets 413 before it is parsed: from the boundary when its
``Content-Length`` says so, from FastAPI's limit as a body without one arrives. The boundary
(:class:`Boundary`, a plain ASGI wrapper around the FastAPI application) also writes the
access log line (method, route, status, time: never a body, a query string or an unknown path,
which could carry a patient's values), sets the privacy headers, and turns an unexpected
exception into a 500 whose log line names the exception's type and place, never its message.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data_schemas import FIELDS_BY_NAME, SCHEMA_VERSION, SchemaError, match_columns, validate_record
from predictor._scoring import Prediction, predict
from predictor.model import Model, load_model
from predictor.serve._chart import render_svg, shown_value, waterfall
from predictor.serve._form import Section, form_record, form_sections, problems_by_field
from predictor.serve._json import (
    ErrorOut,
    HealthOut,
    PredictionOut,
    ProblemOut,
    ProblemsOut,
    RequestProblem,
    SchemaOut,
    key_problems,
    not_an_object,
    parse_body,
    record_json_schema,
    schema_out,
)

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
"""A request body larger than this (2 MiB) is refused with 413 before it is parsed."""
DEFAULT_MAX_RECORDS = 100
"""``POST /predict`` takes at most this many records in one request (413 beyond); a larger
set is a file for ``python -m predictor score``."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
"""The Host headers accepted when serving on loopback (a page elsewhere that rebinds its own
name to 127.0.0.1 is refused)."""

ACCESS_LOG = logging.getLogger("predictor.serve.access")
ERROR_LOG = logging.getLogger("predictor.serve.error")

DISCLAIMER = (
    "Demonstration model trained on synthetic data, not a clinical tool: do not use it to "
    "make treatment decisions."
)
ROUTE_CAVEAT = (
    "Route was not randomised in the training data: patients given IV ketamine and intranasal "
    "esketamine differed in other ways, so this difference is an association, not the effect "
    "of switching route."
)
SAFETY_PREFIX = "safety screen: "
"""How a safety-screen warning begins (``predictor._explain``); the page shows them first."""
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}
"""A page loads nothing but this server's style sheet."""
PRIVATE_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
"""Every response: never stored by a browser or proxy (a page or a prediction may carry a
patient's values), its content type taken as given, no referrer sent on."""

_STATIC = Path(__file__).parent / "static"
_ENV = Environment(
    loader=PackageLoader("predictor.serve", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class Boundary:
    """Plain ASGI wrapper: access log, privacy headers, catch-all 500.

    Parameters
    ----------
    app : ASGI application
    routes : sequence of str
        The application's paths: the access log names these and nothing else.
    max_body_bytes : int
        A request whose ``Content-Length`` is larger gets 413 with :func:`too_large`'s
        sentence at once (FastAPI's own limit, which counts a body without one as it arrives,
        would answer it in plain text).
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[str], max_body_bytes: int) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
                headers += PRIVATE_HEADERS
                message = {**message, "headers": headers}
            await send(message)

        try:
            if self._declares_too_much(scope):
                await _send_json(send_logged, 413, {"detail": too_large(self.max_body_bytes)})
            else:
                await self.app(scope, receive, send_logged)
        except Exception as exc:  # a bug: log type and place only (a message may quote a value)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            ERROR_LOG.error(
                "internal error: %s in %s, line %s",
                type(exc).__name__,
                Path(where.filename).name,
                where.lineno,
            )
            if not status:
                await _send_json(send_logged, 500, {"detail": "internal error; see the server log"})
        finally:
            route = scope["path"] if scope["path"] in self.routes else "(other path)"
            ACCESS_LOG.info(
                "%s %s %d %.1f ms",
                scope["method"],
                route,
                status,
                1000 * (time.perf_counter() - started),
            )

    def _declares_too_much(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) > self.max_body_bytes
        return False


def too_large(max_body_bytes: int) -> str:
    """The 413 sentence for a body over the limit."""
    return (
        f"the request body is larger than the server's limit of {max_body_bytes:,} bytes; "
        "send fewer records per request, or score a file with `python -m predictor score`"
    )


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _problems_response(problems: list[ProblemOut]) -> JSONResponse:
    count = len(problems)
    records = sorted({p.record for p in problems if p.record is not None})
    where = f" in record{'s' if len(records) != 1 else ''} {', '.join(map(str, records))}"
    detail = (
        f"{count} problem{'s' if count != 1 else ''}{where if records else ''}; nothing was scored"
    )
    content = ProblemsOut(detail=detail, problems=problems).model_dump()
    return JSONResponse(content, status_code=422)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def predict_records(model: Model, records: list[Any]) -> list[dict[str, Any]] | list[ProblemOut]:
    """Each record's prediction as ``PredictionOut`` fields, or every problem of every record."""
    results, problems = [], []
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(not_an_object(position, record))
            continue
        refused = key_problems(position, record)
        if refused:
            problems += refused
            continue
        try:
            prediction = predict(record, model=model)
        except SchemaError as exc:
            problems += [ProblemOut.of(position, problem) for problem in exc.problems]
            continue
        keys = tuple(record)
        match = match_columns(keys)
        ids = [s.column for s in match.sources if s.field.name == "patient_id"]
        patient_id = record[ids[0]] if ids else None
        results.append(
            {
                "patient_id": None if patient_id is None else _text(patient_id)[:200],
                **prediction.to_dict(),
                "ignored_keys": [keys[i][:200] for i in match.unknown],
            }
        )
    return problems if problems else results


# --------------------------------------------------------------------------- the page


def _percent(p: float) -> str:
    return f"{100 * p:.1f}%"


def _result(model: Model, record: dict[str, str], prediction: Prediction) -> dict[str, Any]:
    """What the page shows of one prediction."""
    clean = validate_record(record)
    chart = waterfall(prediction.baseline, prediction.contributions, clean)
    safety = [w for w in prediction.warnings if w.startswith(SAFETY_PREFIX)]
    return {
        "prediction": prediction,
        "probability": _percent(prediction.probability),
        "low": _percent(prediction.interval[0]),
        "high": _percent(prediction.interval[1]),
        "likely": prediction.probability >= model.threshold,
        "svg": render_svg(chart),
        "safety": safety,
        "other_warnings": [w for w in prediction.warnings if w not in safety],
    }


class Page:
    """The page at ``/``: the form (generated from the field table) and, after a submit, the
    prediction, its chart, reasons, warnings and a what-if."""

    def __init__(self, model: Model, *, about: str = "") -> None:
        self.model = model
        self.about = about
        self.sections: tuple[Section, ...] = form_sections(model.fields)
        self.template = _ENV.get_template("page.html")
        model_fields = [f for s in self.sections for f in s.fields if f.name in model.fields]
        self.whatif_fields = [(f.name, f.label) for f in model_fields]

    def render(self, form: dict[str, str] | None = None) -> str:
        """The page for a submitted form (None: the empty form)."""
        context: dict[str, Any] = {
            "disclaimer": DISCLAIMER,
            "about": self.about,
            "sections": self.sections,
            "values": form or {},
            "errors": {},
            "result": None,
            "whatif": None,
            "whatif_fields": self.whatif_fields,
            "threshold": _percent(self.model.threshold),
        }
        if form is None:
            return self.template.render(context)
        record, problems = form_record(form, self.sections)
        try:
            if problems:
                raise SchemaError(problems)
            prediction = predict(record, model=self.model)
        except SchemaError as exc:
            context["errors"] = problems_by_field(exc.problems)
            return self.template.render(context)
        context["result"] = _result(self.model, record, prediction)
        field = form.get("whatif_field", "")
        if form.get("action") == "whatif" and field in self.model.fields:
            context["whatif"] = self._whatif(form, field, prediction)
        return self.template.render(context)

    def _whatif(self, form: dict[str, str], field: str, before: Prediction) -> dict[str, Any]:
        changed = {**form, field: form.get("whatif_value", "")}
        record, problems = form_record(changed, self.sections)
        label = FIELDS_BY_NAME[field].label
        view: dict[str, Any] = {"field": field, "label": label, "error": "", "after": None}
        try:
            if problems:
                raise SchemaError(problems)
            after = predict(record, model=self.model)
        except SchemaError as exc:
            view["error"] = " ".join(p.message for p in exc.problems)
            return view
        clean = validate_record(record)
        difference = 100 * (after.probability - before.probability)
        view.update(
            after=after,
            shown=shown_value(field, clean[field]),
            probability=_percent(after.probability),
            low=_percent(after.interval[0]),
            high=_percent(after.interval[1]),
            before=_percent(before.probability),
            difference=f"{difference:+.1f}",
            caveat=ROUTE_CAVEAT if field == "route" else "",
        )
        return view


MAX_FORM_FIELDS = 500
"""A form with more fields is refused (the page's has a few dozen)."""


def _form_data(body: bytes) -> dict[str, str] | None:
    """A form body (``application/x-www-form-urlencoded``) as name -> the last value; None
    when it has more than :data:`MAX_FORM_FIELDS` fields."""
    text = body.decode("utf-8", errors="replace")
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError:  # parse_qsl's only complaint with these arguments: too many fields
        return None


def create_app(
    model: Model | str | os.PathLike[str] | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    allowed_hosts: Sequence[str] | None = None,
) -> ASGIApp:
    """The web application (an ASGI app: run it with uvicorn, or test it with a TestClient).

    Parameters
    ----------
    model : Model or path, optional
        A loaded model, or a model directory / ``model.json``; default: the shipped model.
    max_body_bytes : int
        Larger request bodies get 413.
    max_records : int
        ``POST /predict`` with more records gets 413.
    allowed_hosts : sequence of str, optional
        Host headers accepted (``None``: any); ``serve`` passes :data:`LOOPBACK_HOSTS` when it
        listens on loopback.
    """
    resolved = model if isinstance(model, Model) else load_model(model)
    summary = resolved.summary()
    about = f"Model: {summary.name}; ketamine-predictor {_version()}."
    page = Page(resolved, about=about)
    schema = schema_out(resolved.fields)
    api = FastAPI(
        title="Ketamine treatment-response predictor",
        version=_version(),
        summary=DISCLAIMER,
        description=(
            "One patient at a time, or a few: `POST /predict` takes a record (an object of "
            "field: value, in the fields, aliases and units of `GET /schema`) or a list of at "
            f"most {max_records} records, in a body of at most {max_body_bytes:,} bytes (413 "
            "beyond either). A bad record gives 422 with every problem (record, field, value, "
            "rule), and no record of that request is scored. The access log has the method, "
            "route, status and time of each request, never a body."
        ),
        docs_url=None,
        redoc_url=None,
        max_body_size=max_body_bytes,  # 413 as a body without Content-Length arrives
    )

    @api.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 413:
            return JSONResponse({"detail": too_large(max_body_bytes)}, status_code=413)
        return await http_exception_handler(request, exc)

    if allowed_hosts is not None:
        api.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @api.get("/health", response_model=HealthOut, summary="Whether the server is up, and its model")
    def health() -> HealthOut:
        return HealthOut(
            status="ok", model=summary.name, schema_version=SCHEMA_VERSION, version=_version()
        )

    @api.get("/schema", response_model=SchemaOut, summary="The input fields, from the field table")
    def get_schema() -> SchemaOut:
        return schema

    @api.post(
        "/predict",
        response_model=PredictionOut | list[PredictionOut],
        summary="Predict response for one record or a list of records",
        responses={
            413: {"model": ErrorOut, "description": "body or record count over the limit"},
            422: {"model": ProblemsOut, "description": "records that break the schema"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                record_json_schema(),
                                {
                                    "type": "array",
                                    "items": record_json_schema(),
                                    "maxItems": max_records,
                                },
                            ]
                        },
                        "example": {"crp_mg_l": 0.9, "bdnf_ng_ml": 27.0, "route": "iv_ketamine"},
                    }
                },
            }
        },
    )
    async def post_predict(request: Request) -> Any:
        try:
            records, is_list = parse_body(await request.body())
        except RequestProblem as exc:
            return _problems_response(exc.problems)
        if len(records) > max_records:
            return JSONResponse(
                {
                    "detail": f"{len(records):,} records in one request, more than the limit of "
                    f"{max_records:,}; send them in several requests, or score a file with "
                    "`python -m predictor score`"
                },
                status_code=413,
            )
        if len(records) == 1:  # the usual request: no thread hand-off
            results = predict_records(resolved, records)
        else:  # a list takes longer: off the event loop, so other requests go on meanwhile
            results = await run_in_threadpool(predict_records, resolved, records)
        if results and isinstance(results[0], ProblemOut):
            return _problems_response(results)  # type: ignore[arg-type]  # ProblemOut items
        return results if is_list else results[0]

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def get_page() -> HTMLResponse:
        return HTMLResponse(page.render(), headers=PAGE_HEADERS)

    @api.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def post_page(request: Request) -> HTMLResponse:
        form = _form_data(await request.body())
        if form is None:
            return HTMLResponse(
                f"<p>The form sent more than {MAX_FORM_FIELDS} fields. {DISCLAIMER}</p>",
                status_code=413,
                headers=PAGE_HEADERS,
            )
        return HTMLResponse(page.render(form), headers=PAGE_HEADERS)

    @api.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        html = _ENV.get_template("docs.html").render(
            disclaimer=DISCLAIMER, about=about, openapi=api.openapi(), pretty=_pretty, code=_code
        )
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @api.get("/static/page.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response((_STATIC / "page.css").read_bytes(), media_type="text/css")

    routes = [getattr(route, "path", "") for route in api.routes]
    return Boundary(api, routes=routes, max_body_bytes=max_body_bytes)


def _code(text: str) -> Markup:
    """Text with its `backticked` spans as <code>, everything else escaped."""
    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if k % 2 else p for k, p in enumerate(parts)))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _version() -> str:
    try:
        return version("ketamine-predictor")
    except PackageNotFoundError:
        return "unknown"
