"""The OpenAPI 3.1 description of an identifier node's HTTP API (the Handle.net v9 REST API
as plantwire serves it, and the proxy). A standalone node serves it at
``/api/openapi.json``; the tests fuzz the node against it with schemathesis."""

from __future__ import annotations

from typing import Any

__all__ = ["handle_api_document"]

_RESPONSE = {
    "type": "object",
    "required": ["responseCode"],
    "properties": {
        "responseCode": {"type": "integer"},
        "handle": {"type": "string"},
        "message": {"type": "string"},
        "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
        "referral": {"type": "string"},
    },
}
_VALUE = {
    "type": "object",
    "required": ["index", "type", "data"],
    "properties": {
        "index": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "type": {"type": "string", "minLength": 1, "maxLength": 64},
        "data": {
            "oneOf": [
                {"type": "string", "maxLength": 256},
                {
                    "type": "object",
                    "required": ["format", "value"],
                    "properties": {
                        "format": {
                            "enum": ["string", "base64", "hex", "admin", "vlist", "site", "key"]
                        },
                        "value": {},
                    },
                },
            ]
        },
        "ttl": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        "timestamp": {"type": "string"},
        "permissions": {"type": "string"},
        "references": {"type": "array"},
    },
}
_LIST = {
    "type": "object",
    "required": ["responseCode", "totalCount"],
    "properties": {
        "responseCode": {"type": "integer"},
        "prefix": {"type": "string"},
        "totalCount": {"type": "string"},
        "page": {"type": "integer"},
        "pageSize": {"type": "integer"},
        "handles": {"type": "array", "items": {"type": "string"}},
        "prefixes": {"type": "array", "items": {"type": "string"}},
    },
}
_SESSION = {
    "type": "object",
    "properties": {
        "sessionId": {"type": "string"},
        "nonce": {"type": "string"},
        "authenticated": {"type": "boolean"},
        "id": {"type": "string"},
        "error": {"type": "string"},
    },
}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _handle_responses(*codes: int) -> dict[str, Any]:
    meanings = {
        200: "success (responseCode 1), or values not found on resolution (200)",
        201: "created",
        300: "prefix referral (responseCode 303)",
        400: "bad request: invalid handle (102), value (202), protocol (4), not here (301)",
        401: "authentication needed (402) or failed (403)",
        403: "not permitted (400), or a session over plain HTTP",
        404: "handle not found (100), or an unknown endpoint (4)",
        405: "method not allowed",
        409: "handle (101) or value (201) already exists",
        413: "body too large",
        502: "upstream nodes failed (recursive nodes only)",
        504: "upstream nodes timed out (recursive nodes only)",
    }
    return {str(code): _json("HandleResponse", meanings[code]) for code in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_HANDLE_PARAM = {
    "name": "handle",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 300},
    "description": "prefix/suffix (a '/' inside is sent as %2F); without '/', a prefix record",
}
_FLAG = {"type": "string", "enum": ["", "true", "false", "yes"]}


def handle_api_document() -> dict[str, Any]:
    handle_ops: dict[str, Any] = {
        "get": {
            "summary": "Resolve a handle",
            "parameters": [
                _HANDLE_PARAM,
                _query("index", {"type": "array", "items": {"type": "integer"}}, "only these"),
                _query("type", {"type": "array", "items": {"type": "string"}}, "only these"),
                _query("auth", _FLAG, "authoritative: bypass caches"),
                _query("publicOnly", _FLAG, "public values only"),
                _query("pretty", _FLAG, "indented JSON"),
            ],
            "responses": _handle_responses(200, 300, 400, 401, 404, 502, 504),
        },
        "put": {
            "summary": "Create or replace a handle, or add or change some of its values",
            "parameters": [
                _HANDLE_PARAM,
                _query("overwrite", _FLAG, "replace an existing handle or value (default)"),
                _query(
                    "index",
                    {"type": "array", "items": {"type": "string"}},
                    "add or change only these values ('various': the body's)",
                ),
                _query("mintNewSuffix", _FLAG, "append a random UUID to the handle"),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
                                {
                                    "type": "object",
                                    "required": ["values"],
                                    "properties": {
                                        "handle": {"type": "string"},
                                        "values": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Value"},
                                        },
                                    },
                                },
                            ]
                        }
                    }
                },
            },
            "responses": _handle_responses(200, 201, 400, 401, 403, 409, 413),
        },
        "delete": {
            "summary": "Delete a handle, or some of its values",
            "parameters": [
                _HANDLE_PARAM,
                _query("index", {"type": "array", "items": {"type": "integer"}}, "only these"),
            ],
            "responses": _handle_responses(200, 400, 401, 403, 404),
        },
    }
    list_responses = {
        "200": _json("List", "the handles under the prefix"),
        **_handle_responses(400, 401, 403),
    }
    session_responses = {
        "200": _json("Session", "the session"),
        "201": _json("Session", "a new session and its nonce"),
        "204": {"description": "ended"},
        "400": _json("HandleResponse", "malformed authorization"),
        "401": _json("Session", "the proof did not verify"),
        "403": _json("HandleResponse", "no such session, or plain HTTP from afar"),
        "405": _json("HandleResponse", "method not allowed"),
        "413": _json("HandleResponse", "body too large"),
    }
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "plantwire identifier node (Handle.net v9 REST API)",
            "version": "1",
            "description": "See docs/identifiers.md. Errors use the Handle JSON shape.",
        },
        "paths": {
            "/api/handles/{handle}": handle_ops,
            "/api/handles": {
                "get": {
                    "summary": "List the handles under a prefix",
                    "parameters": [
                        {
                            "name": "prefix",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 300},
                        },
                        _query("page", {"type": "integer"}, "zero-based page"),
                        _query("pageSize", {"type": "integer"}, "0: count only"),
                    ],
                    "responses": list_responses,
                }
            },
            "/api/prefixes": {
                "get": {
                    "summary": "The homed prefixes the caller may list",
                    "parameters": [
                        _query("page", {"type": "integer"}, "zero-based page"),
                        _query("pageSize", {"type": "integer"}, "prefixes per page"),
                    ],
                    "responses": list_responses,
                }
            },
            "/api/sessions": {
                "post": {"summary": "Open a challenge session", "responses": session_responses}
            },
            "/api/sessions/this": {
                method: {
                    "summary": f"{method.upper()} the current session",
                    "responses": session_responses,
                }
                for method in ("get", "put", "post", "delete")
            },
            "/api/verifications": {
                "post": {
                    "summary": "Whether a secret key held here is right",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id", "secret"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "secret": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the verdict",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["responseCode", "verified"],
                                        "properties": {
                                            "responseCode": {"type": "integer"},
                                            "verified": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        **_handle_responses(400, 403, 413),
                    },
                }
            },
            "/hdl/{handle}": {
                "get": {
                    "summary": "Proxy: redirect to the handle's URL, or show its values",
                    "parameters": [
                        _HANDLE_PARAM,
                        _query(
                            "index",
                            {"type": "array", "items": {"type": "integer"}},
                            "redirect to this value",
                        ),
                        _query("noredirect", _FLAG, "show the values"),
                    ],
                    "responses": {
                        "200": {"description": "the values as a page", "content": html},
                        "302": {"description": "to the URL value"},
                        "400": {"description": "not a handle", "content": html},
                        "404": {"description": "no such handle", "content": html},
                        "502": {"description": "upstream failed", "content": html},
                        "504": {"description": "upstream timed out", "content": html},
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "HandleResponse": _RESPONSE,
                "Value": _VALUE,
                "List": _LIST,
                "Session": _SESSION,
            }
        },
    }
