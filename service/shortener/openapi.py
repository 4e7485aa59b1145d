"""The OpenAPI 3.0 document of the API, served at /openapi.json."""

from flask import Blueprint, jsonify

from .codes import CUSTOM_PATTERN

bp = Blueprint("openapi", __name__)


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_CODE_PARAM = {
    "name": "code",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,32}$"},
}
# Disabling and enabling: the creator's key or an admin key.
_CHANGE_ERRORS = {
    "401": _error("The API key is missing or is no configured key"),
    "403": _error("No key is configured in the service (keys_not_configured), or this key did not create the link"
                  " and is no admin key (not_owner)"),
    "404": _error("No such link"),
}
_TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}
_LINK = {
    "type": "object",
    "required": ["code", "short_url", "url", "created_at", "expires_at"],
    "properties": {
        "code": {"type": "string"},
        "short_url": {"type": "string", "format": "uri"},
        "url": {"type": "string", "format": "uri"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": _TIMESTAMP,
    },
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "URL shortener",
        "version": "1.0.0",
        "description": "Short links stored in Postgres, redirects cached in Redis. "
        'Every error is a JSON object {"error": {"code", "message"}}.',
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            "NewLink": {
                "type": "object",
                "required": ["url"],
                "additionalProperties": False,
                "properties": {
                    "url": {"type": "string", "maxLength": 2048, "description": "An http or https URL with a host."},
                    "code": {
                        "type": "string",
                        "pattern": f"^{CUSTOM_PATTERN}$",
                        "description": "A custom code; not a reserved word.",
                    },
                    "expires_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "With a UTC offset; in the future.",
                    },
                },
            },
            "Link": _LINK,
            "LinkInfo": {
                "allOf": [
                    {"$ref": "#/components/schemas/Link"},
                    {
                        "type": "object",
                        "required": ["disabled_at", "status", "clicks"],
                        "properties": {
                            "disabled_at": _TIMESTAMP,
                            "status": {"type": "string", "enum": ["active", "expired", "disabled"]},
                            "clicks": {"type": "integer", "minimum": 0},
                        },
                    },
                ]
            },
            "Readiness": {
                "type": "object",
                "required": ["status", "dependencies"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
                    "dependencies": {
                        "type": "object",
                        "properties": {
                            "postgres": {"type": "string", "enum": ["up", "down"]},
                            "redis": {"type": "string", "enum": ["up", "down"]},
                        },
                    },
                    "error": {"$ref": "#/components/schemas/Error/properties/error"},
                },
            },
        },
    },
    "paths": {
        "/shorten": {
            "post": {
                "summary": "Create a short link",
                "security": [{}, {"apiKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewLink"}}},
                },
                "responses": {
                    "201": {
                        "description": "Created (committed)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Link"}}},
                    },
                    "400": _error("Malformed JSON or an invalid url, code or expires_at"),
                    "401": _error("The API key is wrong, or missing where creates need one"),
                    "403": _error("Creates need a key and none is configured in the service"),
                    "409": _error("The custom code is taken"),
                    "413": _error("The body is too large"),
                    "415": _error("The body is not application/json"),
                    "429": _error("Too many creates from this client; see Retry-After"),
                    "503": _error("Postgres is unavailable"),
                },
            }
        },
        "/{code}": {
            "get": {
                "summary": "Follow a short link",
                "parameters": [_CODE_PARAM],
                "responses": {
                    "302": {
                        "description": "Redirect to the target",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "404": _error("No such link"),
                    "410": _error("The link expired or was disabled"),
                    "503": _error("Postgres is unavailable and the link is not cached"),
                },
            }
        },
        "/api/links/{code}": {
            "get": {
                "summary": "Describe a link, with its click count",
                "parameters": [_CODE_PARAM],
                "responses": {
                    "200": {
                        "description": "The link",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LinkInfo"}}},
                    },
                    "404": _error("No such link"),
                    "503": _error("Postgres is unavailable"),
                },
            },
            "delete": {
                "summary": "Disable a link",
                "security": [{"apiKey": []}],
                "parameters": [_CODE_PARAM],
                "responses": {
                    "204": {"description": "Disabled"},
                    **_CHANGE_ERRORS,
                    "503": _error("Postgres is unavailable, or Redis could not be told (the link stays active)"),
                },
            },
        },
        "/api/links/{code}/enable": {
            "post": {
                "summary": "Enable a disabled link again",
                "security": [{"apiKey": []}],
                "parameters": [_CODE_PARAM],
                "responses": {
                    "204": {"description": "Enabled"},
                    **_CHANGE_ERRORS,
                    "503": _error("Postgres is unavailable, or Redis could not be told (the link stays disabled)"),
                },
            }
        },
        "/health": {
            "get": {"summary": "Liveness; touches no dependency", "responses": {"200": {"description": "Alive"}}}
        },
        "/health/ready": {
            "get": {
                "summary": "Readiness with each dependency's state",
                "responses": {
                    "200": {
                        "description": "Ready (ok, or degraded without Redis)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}},
                    },
                    "503": {
                        "description": "Postgres is unreachable",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
}


@bp.get("/openapi.json")
def document():
    """Serve the OpenAPI document."""
    return jsonify(DOCUMENT)
