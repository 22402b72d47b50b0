"""The OpenAPI 3.1 description of what the agency API serves (API.md, as built so far).

A test walks the klein routes and this document and fails when they differ,
so the document cannot fall behind the code.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _ERROR for status in statuses}


def _json_body(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, **_json_body(schema)}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_AGENCY = {
    "type": "object",
    "required": [
        "code",
        "address",
        "name",
        "name_en",
        "kind",
        "phase",
        "parent",
        "county",
        "status",
    ],
    "properties": {
        "code": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
        "address": {"type": "string"},
        "name": {"type": "string", "description": "Persian name"},
        "name_en": {"type": "string"},
        "kind": {"type": "string"},
        "phase": {"type": "integer", "enum": [1, 2, 3]},
        "parent": {"type": ["string", "null"]},
        "county": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["active", "pending", "suspended"]},
        "certificate_fingerprint_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

_ADDRESSES = {"type": "array", "items": {"type": "string"}}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_EVENT = {
    "type": "object",
    "required": ["at", "status", "node"],
    "properties": {
        "at": _TIME,
        "address": {"type": "string"},
        "status": {"type": "string"},
        "node": {"type": "string"},
        "detail": {"type": ["string", "null"]},
    },
}
_RECIPIENT = {
    "type": "object",
    "required": ["address", "kind", "status"],
    "properties": {
        "address": {"type": "string"},
        "kind": {"type": "string", "enum": ["to", "cc"]},
        "status": {
            "type": "string",
            "enum": ["queued", "relayed", "delivered", "read", "answered", "failed", "expired"],
        },
        "reason": {"type": "string"},
        "read_at": _NULLABLE_TIME,
        "events": {"type": "array", "items": _EVENT},
    },
}
_SUMMARY = {
    "type": "object",
    "required": [
        "id",
        "number",
        "sender",
        "subject",
        "priority",
        "classification",
        "created_at",
        "delivered_at",
        "read_at",
    ],
    "properties": {
        "id": {"type": "string"},
        "number": {"type": "string"},
        "sender": {"type": "string"},
        "subject": {"type": "string"},
        "priority": {"type": "string"},
        "classification": {"type": "string"},
        "created_at": _TIME,
        "delivered_at": _NULLABLE_TIME,
        "read_at": _NULLABLE_TIME,
    },
}
_PAGE = {
    "type": "object",
    "required": ["letters", "next"],
    "properties": {
        "letters": {"type": "array", "items": _SUMMARY},
        "next": {"type": ["string", "null"]},
    },
}
_LETTER_ID = {"name": "letter_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGING = [
    _query("after", {"type": "string"}, "cursor from the previous page's `next`"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
]

_SCHEMAS: dict[str, Any] = {
    "NewLetter": {
        "type": "object",
        "required": ["to", "subject"],
        "properties": {
            "to": {**_ADDRESSES, "minItems": 1, "maxItems": 100},
            "cc": {**_ADDRESSES, "maxItems": 100},
            "subject": {"type": "string", "minLength": 1, "maxLength": 500},
            "body": {"type": "string", "maxLength": 1000000},
            "priority": {"type": "string", "enum": ["normal", "urgent", "immediate"]},
            "classification": {
                "type": "string",
                "enum": ["normal", "restricted", "confidential", "secret"],
            },
            "in_reply_to": {"type": ["string", "null"]},
            "reply_by": {
                "type": ["string", "null"],
                "description": "when an answer is due: 2026-12-01, 1405/09/10 (Jalali) "
                "or an RFC 3339 time",
            },
            "attachments": {
                "type": "array",
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["filename", "data"],
                    "properties": {
                        "filename": {"type": "string"},
                        "content_type": {"type": "string"},
                        "data": {"type": "string", "contentEncoding": "base64"},
                    },
                },
            },
        },
    },
    "Registered": {
        "type": "object",
        "required": ["id", "number", "status", "created_at", "created_at_jalali", "recipients"],
        "properties": {
            "id": {"type": "string"},
            "number": {"type": "string"},
            "status": {"type": "string"},
            "created_at": _TIME,
            "created_at_jalali": {"type": "string"},
            "recipients": {"type": "array", "items": _RECIPIENT},
        },
    },
    "Letter": {
        "type": "object",
        "required": [
            "id",
            "number",
            "sender",
            "to",
            "cc",
            "subject",
            "body",
            "status",
            "created_at",
            "recipients",
            "attachments",
        ],
        "properties": {
            "id": {"type": "string"},
            "number": {"type": "string"},
            "sender": {"type": "string"},
            "to": _ADDRESSES,
            "cc": _ADDRESSES,
            "subject": {"type": "string"},
            "body": {"type": "string"},
            "priority": {"type": "string"},
            "classification": {"type": "string"},
            "in_reply_to": {"type": ["string", "null"]},
            "reply_by": {"type": ["string", "null"]},
            "status": {"type": "string"},
            "created_at": _TIME,
            "created_at_jalali": {"type": "string"},
            "recipients": {"type": "array", "items": _RECIPIENT},
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "filename": {"type": "string"},
                        "content_type": {"type": "string"},
                        "size": {"type": "integer"},
                        "sha256": {"type": "string"},
                    },
                },
            },
        },
    },
    "Recipient": _RECIPIENT,
    "Events": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": _EVENT}},
    },
    "Page": _PAGE,
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                },
            }
        },
    },
    "Credentials": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "minLength": 1},
            "password": {"type": "string", "minLength": 1},
        },
    },
    "Token": {
        "type": "object",
        "required": ["token", "token_type", "agency", "user", "expires_at"],
        "properties": {
            "token": {"type": "string"},
            "token_type": {"type": "string", "const": "Bearer"},
            "agency": {"type": "string"},
            "user": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
    "Agency": _AGENCY,
    "AgencyList": {
        "type": "object",
        "required": ["agencies", "total"],
        "properties": {
            "agencies": {"type": "array", "items": {"$ref": "#/components/schemas/Agency"}},
            "total": {"type": "integer", "minimum": 0},
        },
    },
}

_PATHS: dict[str, Any] = {
    "/api/v1/letters": {
        "post": {
            "summary": "Register and send a letter (201 only once it is durably stored)",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                }
            ],
            "requestBody": {"required": True, **_json_body("NewLetter")},
            "responses": {
                "201": _ok("Registered", "Registered"),
                **_errors(400, 401, 403, 409, 413, 415, 422, 429, 503),
            },
        }
    },
    "/api/v1/letters/{letter_id}": {
        "get": {
            "summary": "A letter the caller sent or received, with its recipients' trails",
            "parameters": [_LETTER_ID],
            "responses": {"200": _ok("The letter", "Letter"), **_errors(401, 403, 404, 503)},
        }
    },
    "/api/v1/letters/{letter_id}/events": {
        "get": {
            "summary": "The tracking trail, oldest first",
            "parameters": [_LETTER_ID],
            "responses": {"200": _ok("Events", "Events"), **_errors(401, 403, 404, 503)},
        }
    },
    "/api/v1/letters/{letter_id}/attachments/{index}": {
        "get": {
            "summary": "An attachment's bytes",
            "parameters": [
                _LETTER_ID,
                {
                    "name": "index",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "responses": {
                "200": {
                    "description": "The file, with its stored Content-Type",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                **_errors(401, 403, 404, 503),
            },
        }
    },
    "/api/v1/letters/{letter_id}/read": {
        "post": {
            "summary": "Mark a received letter read (idempotent)",
            "parameters": [_LETTER_ID],
            "responses": {
                "200": _ok("The caller's recipient entry", "Recipient"),
                **_errors(401, 403, 404, 503),
            },
        }
    },
    "/api/v1/inbox": {
        "get": {
            "summary": "Letters delivered to the caller's agency, newest first",
            "parameters": [
                *_PAGING,
                _query(
                    "unread",
                    {"type": "string", "enum": ["true", "false"]},
                    "only letters not yet read",
                ),
            ],
            "responses": {"200": _ok("A page", "Page"), **_errors(400, 401, 403, 503)},
        }
    },
    "/api/v1/events": {
        "get": {
            "summary": "Server-sent events: `letter` (delivered to the caller), `status` "
            "(a letter it sent changed); resume with Last-Event-ID",
            "parameters": [
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": {
                    "description": "An endless text/event-stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_errors(400, 401, 403, 503),
            },
        }
    },
    "/api/v1/x/{plugin}/{rest}": {
        method: {
            "summary": "A route an enabled plugin adds (docs/plugins.md); 404 when none",
            "parameters": [
                {"name": "plugin", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "rest", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "What the plugin answers (JSON unless it says otherwise)",
                    "content": {"application/json": {"schema": {}}},
                },
                **_errors(400, 401, 403, 404, 405, 409, 422, 429, 500, 503),
            },
        }
        for method in ("get", "post", "put", "patch", "delete")
    },
    "/api/v1/outbox": {
        "get": {
            "summary": "Letters the caller's agency sent, newest first",
            "parameters": _PAGING,
            "responses": {"200": _ok("A page", "Page"), **_errors(400, 401, 403, 503)},
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/api/v1/auth/token": {
        "post": {
            "summary": "Exchange LDAP credentials for a bearer token",
            "security": [],
            "requestBody": {"required": True, **_json_body("Credentials")},
            "responses": {
                "200": _ok("A new token", "Token"),
                **_errors(400, 401, 403, 413, 415, 429, 503),
            },
        },
        "delete": {
            "summary": "Revoke the presented token",
            "responses": {"204": {"description": "Revoked"}, **_errors(401, 403)},
        },
    },
    "/api/v1/directory": {
        "get": {
            "summary": "Search the directory (Persian-aware folding)",
            "parameters": [
                _query("q", {"type": "string"}, "free text, folded as API.md says"),
                _query("county", {"type": "string"}, "county slug"),
                _query("phase", {"type": "integer", "enum": [1, 2, 3]}, "joining phase"),
                _query("parent", {"type": "string"}, "code of the provincial parent"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                _query("offset", {"type": "integer", "minimum": 0}, "rows to skip"),
            ],
            "responses": {
                "200": _ok("Matching agencies", "AgencyList"),
                **_errors(400, 401, 403, 503),
            },
        }
    },
    "/api/v1/directory/{code}": {
        "get": {
            "summary": "One agency, by code or full address",
            "parameters": [
                {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": _ok("The agency", "Agency"), **_errors(401, 403, 404, 503)},
        }
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "govnode agency API", "version": "1"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "responses": {
                "Error": {"description": "An error (API.md's error shape)", **_json_body("Error")},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
