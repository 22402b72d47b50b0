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

_SCHEMAS: dict[str, Any] = {
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
