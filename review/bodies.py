"""Request bodies the station accepts: JSON objects, shallow, sent as JSON."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_JSON_DEPTH = 8
"""Deepest nesting of a JSON body (the API's own go three deep)."""


async def read_json(request: Request) -> dict:
    """The request's JSON object (at most ``MAX_JSON_DEPTH`` deep); 415 for another type, 400 for bad JSON."""
    if Headers(scope=request.scope).get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send JSON, with Content-Type: application/json")
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise HTTPException(400, "send a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "send a JSON object")
    if _depth(body) > MAX_JSON_DEPTH:
        raise HTTPException(400, f"the JSON is nested more than {MAX_JSON_DEPTH} deep")
    return body


def _depth(value: object) -> int:
    """How deep lists and objects nest in a parsed JSON value (a scalar is 0)."""
    deepest, level = 0, [(value, 0)]
    while level:
        node, depth = level.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth + 1)
            level += [(child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)]
    return deepest
