"""The OpenAPI 3.0 document of the API, built from the app's configuration and served at /openapi.json."""

from flask import Blueprint, current_app, jsonify

from . import codes, ratelimit

bp = Blueprint("openapi", __name__)


def _json(schema: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error(description: str) -> dict:
    return _json("Error", description)


_CODE_PARAM = {
    "name": "code",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,32}$"},
}
_TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}
_LINK = {
    "type": "object",
    "required": ["code", "short_url", "url", "created_at", "expires_at"],
    "properties": {
        "code": {"type": "string"},
        # Without PUBLIC_BASE_URL, the path alone ("/abc1234"): resolved against the URL the client used.
        "short_url": {"type": "string", "format": "uri-reference"},
        # Not "format": "uri": the canonical target keeps what browsers send as it is ("|", "^"),
        # which RFC 3986 does not allow.
        "url": {"type": "string", "description": "The target in canonical form: ASCII, as a browser requests it."},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": _TIMESTAMP,
    },
}
# From a created link to every operation on it, so that stateful testing reaches them all.
_LINKS_FROM_CREATE = {
    name: {"operationId": operation, "parameters": {"code": "$response.body#/code"}}
    for name, operation in (("Follow", "followLink"), ("Describe", "describeLink"), ("Disable", "disableLink"),
                            ("Enable", "enableLink"))
}
_READINESS = "#/components/schemas/Readiness"


def document(settings) -> dict:
    """The OpenAPI document for an app with these settings (limits come from them, never typed twice)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "URL shortener",
            "version": "1.1.0",
            "description": "Short links stored in Postgres, redirects cached in Redis. "
            'Every error is a JSON object {"error": {"code", "message"}}.',
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": _schemas(settings),
        },
        "paths": {
            "/shorten": {"post": _create(settings)},
            "/{code}": {
                "get": {
                    "operationId": "followLink",
                    "summary": "Follow a short link",
                    "parameters": [_CODE_PARAM],
                    "responses": {
                        "302": {
                            "description": "Redirect to the target",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        "404": _error("No such link"),
                        "405": _error("The path is a word another route owns (e.g. /shorten), which answers no GET"),
                        "410": _error("The link expired or was disabled"),
                        "503": _error("Postgres is unavailable and the link is not cached"),
                    },
                }
            },
            "/api/links/{code}": {
                "get": {
                    "operationId": "describeLink",
                    "summary": "Describe a link, with its state and click count",
                    "parameters": [_CODE_PARAM],
                    "responses": {
                        "200": _json("LinkInfo", "The link (also when expired)"),
                        "404": _error("No such link"),
                        "410": _json("GoneLink", "The link was disabled (DELETE): gone until enabled again"),
                        "503": _error("Postgres is unavailable"),
                    },
                },
                "delete": {
                    "operationId": "disableLink",
                    "summary": "Disable a link: it answers 410 from now on (its creator's key or an admin key)",
                    "security": [{"apiKey": []}],
                    "parameters": [_CODE_PARAM],
                    "responses": {
                        "204": {"description": "Disabled (also when it already was)"},
                        **_change_errors(settings),
                        "503": _error("Postgres is unavailable, or Redis could not be told (the link stays active)"),
                    },
                },
            },
            "/api/links/{code}/enable": {
                "post": {
                    "operationId": "enableLink",
                    "summary": "Enable a disabled link again (its creator's key or an admin key)",
                    "security": [{"apiKey": []}],
                    "parameters": [_CODE_PARAM],
                    "responses": {
                        "204": {"description": "Enabled (also when it already was)"},
                        **_change_errors(settings),
                        "503": _error("Postgres is unavailable, or Redis could not be told (the link stays disabled)"),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness; touches no dependency",
                    "responses": {"200": {"description": "Alive", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["status"],
                        "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}},
                }
            },
            "/health/ready": {
                "get": {
                    "summary": "Ready while redirects can be served (from Postgres or from the cache)",
                    "responses": {
                        "200": {"description": "ok with both dependencies; degraded with one of them",
                                "content": {"application/json": {"schema": {"$ref": _READINESS}}}},
                        "503": {"description": "Neither Postgres nor Redis answers: no redirect can be served",
                                "content": {"application/json": {"schema": {"$ref": _READINESS}}}},
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


def _too_many(settings, *, creates: bool) -> dict:
    """The 429 of an operation, if a limit applies to it: on creates (if it creates), on wrong API keys."""
    reasons = []
    if creates and (limit := ratelimit.spec(settings, "SHORTENER_CREATE_LIMIT")):
        reasons.append(f"more creates from this client than {limit}")
    if limit := ratelimit.spec(settings, "SHORTENER_KEY_FAILURE_LIMIT"):
        reasons.append(f"more wrong API keys from this client than {limit} (then every key it sends is refused"
                       " until the window ends)")
    return {"429": _error(f"Too many requests: {', or '.join(reasons)}; see Retry-After")} if reasons else {}


def _change_errors(settings) -> dict:
    """Disabling and enabling: the creator's key or an admin key."""
    return {
        "401": _error("The API key is missing or is no configured key"),
        "403": _error("No key is configured in the service (keys_not_configured), or this key did not create the"
                      " link and is no admin key (not_owner)"),
        "404": _error("No such link"),
        **_too_many(settings, creates=False),
    }


def _create(settings) -> dict:
    responses = {
        "201": {
            **_json("Link", "Created (committed)"),
            "links": _LINKS_FROM_CREATE,
        },
        "400": _error("Malformed JSON, or a url, code or expires_at the service refuses: besides the schema, a url"
                      " must name a host browsers can reach (UTS #46 IDNA; a host ending in a number must be an"
                      " IPv4 address) that is not this service's own (PUBLIC_BASE_URL, SHORTENER_HOST_ALIASES),"
                      " and expires_at must be in the future, at most"
                      f" {settings['SHORTENER_MAX_EXPIRY_DAYS']} days ahead"),
        "401": _error("The API key is wrong, or missing where creates need one"),
        "403": _error("Creates need a key and none is configured in the service"),
        "409": _error("The custom code is taken"),
        "413": _error(f"The body is larger than {settings['MAX_CONTENT_LENGTH']} bytes"),
        "415": _error("The body is not application/json"),
        "503": _error("Postgres is unavailable"),
        **_too_many(settings, creates=True),
    }
    return {
        "operationId": "createLink",
        "summary": "Create a short link (a key is optional unless the service requires one)",
        "security": [{"apiKey": []}] if settings["SHORTENER_CREATE_NEEDS_KEY"] else [{}, {"apiKey": []}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewLink"}}}},
        "responses": dict(sorted(responses.items())),
    }


def _schemas(settings) -> dict:
    return {
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
                "url": {
                    "type": "string",
                    "minLength": len("http://x"),
                    "maxLength": settings["MAX_URL_LENGTH"],
                    # What every accepted URL matches; the 400 lists what else is refused.
                    "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+([/?#]\S*)?$",
                    "description": "An http or https URL with a host, at most MAX_URL_LENGTH characters.",
                },
                "code": {
                    "type": "string",
                    "nullable": True,
                    "pattern": f"^{codes.CUSTOM_PATTERN}$",
                    "description": "A custom code; not a reserved word. Absent or null: a random one.",
                },
                "expires_at": {
                    "type": "string",
                    "nullable": True,
                    "format": "date-time",
                    "description": "With a UTC offset; in the future, at most"
                    f" {settings['SHORTENER_MAX_EXPIRY_DAYS']} days ahead; stored in UTC. Absent or null: never"
                    " expires.",
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
        "GoneLink": {
            "type": "object",
            "required": ["error", "link"],
            "properties": {
                "error": {"$ref": "#/components/schemas/Error/properties/error"},
                "link": {"$ref": "#/components/schemas/LinkInfo"},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "dependencies"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
                "dependencies": {
                    "type": "object",
                    "required": ["postgres", "redis"],
                    "properties": {
                        "postgres": {"type": "string", "enum": ["up", "down"]},
                        "redis": {"type": "string", "enum": ["up", "down"]},
                    },
                },
                "error": {"$ref": "#/components/schemas/Error/properties/error"},
            },
        },
    }


@bp.get("/openapi.json")
def serve():
    """Serve the OpenAPI document of this app's configuration."""
    return jsonify(document(current_app.config))
