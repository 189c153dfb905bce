"""RFC 9457 problem details, shared by every HTTP API of the platform.

Every error on the HTTP surface, whether raised by a handler, by request validation, by routing
(unknown path, wrong method) or by a bug, reaches the client as ``application/problem+json``;
never as an HTML page or a stack trace."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "ProblemDetail",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = structlog.get_logger("plantwire.http")


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document. Extension members may follow the standard ones."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class Problem(Exception):
    """Raise to answer with a problem document. ``type_`` is a URI naming the problem kind;
    ``about:blank`` means the HTTP status says it all."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extensions or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem answers for these statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "model": ProblemDetail,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is deliberately not echoed back: it may be a password.
    return [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": error.get("msg", "")}
        for error in exc.errors()
    ]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        exc.detail,
        title=exc.title,
        type_=exc.type,
        instance=request.url.path,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's words for a body that is not UTF-8 (or not readable as JSON at all)
        return problem_response(
            400,
            "The request body is not valid UTF-8 JSON.",
            title="Malformed JSON",
            type_="urn:plantwire:problem:malformed-json",
            instance=request.url.path,
        )
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = None
    if exc.status_code == 404 and detail is None:
        detail = f"No resource at {request.url.path}"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(
        exc.status_code,
        detail,
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return problem_response(
            400,
            "The request body is not valid JSON.",
            title="Malformed JSON",
            type_="urn:plantwire:problem:malformed-json",
            instance=request.url.path,
        )
    return problem_response(
        422,
        "The request does not match what this operation accepts.",
        title="Invalid request",
        type_="urn:plantwire:problem:validation",
        instance=request.url.path,
        extensions={"errors": _validation_errors(exc)},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.error(
        "unhandled error",
        method=request.method,
        path=request.url.path,
        error=repr(exc),
        exc_info=exc,
    )
    return problem_response(
        500,
        "The server hit an unexpected error; it has been logged.",
        instance=request.url.path,
    )


async def _on_unstorable(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value the API let through (PostgreSQL stores no NUL character
    in text): the input was bad, so the answer is 400, not 500."""
    _log.warning("database refused a value", path=request.url.path, error=type(exc).__name__)
    return problem_response(
        400,
        "The request holds a value the database cannot store (such as a NUL character).",
        type_="urn:plantwire:problem:unstorable-value",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(DataError, _on_unstorable)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
    _document_problem_bodies(app)


def _document_problem_bodies(app: FastAPI) -> None:
    """FastAPI documents the model of a ``responses=`` entry under the route's media type
    (``application/json``, or ``text/csv`` and ``text/event-stream`` for streaming routes);
    problem answers are ``application/problem+json``, so the OpenAPI document moves their
    schema there (else it would promise a media type never sent, and check problem bodies
    against nothing)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI builds it once and caches it; the move is idempotent
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                for response in operation.get("responses", {}).values():
                    content = response.get("content", {})
                    if content.get(PROBLEM_MEDIA_TYPE, None) != {}:
                        continue  # not a problem answer, or moved already
                    holding = [kind for kind in content if kind != PROBLEM_MEDIA_TYPE]
                    if len(holding) == 1:
                        content[PROBLEM_MEDIA_TYPE] = content.pop(holding[0])
        return document

    app.openapi = openapi  # type: ignore[method-assign]
