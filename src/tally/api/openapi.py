"""The OpenAPI document, built from the facades' operation tables (schemas by msgspec), and a
self-contained docs page (no CDN: self-hosted installs are often offline)."""

from __future__ import annotations

import html
from http import HTTPStatus
from typing import Any

import msgspec

from tally import __version__
from tally.api.base import Facade, Operation

_SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "x-yunxiao-token": {"type": "apiKey", "in": "header", "name": "x-yunxiao-token"},
}


def build_openapi(facades: list[Facade]) -> dict[str, Any]:
    types: list[Any] = []
    for facade in facades:
        for op in facade.operations():
            for kind in (op.body, op.response):
                if kind is not None and not isinstance(kind, dict):
                    types.append(kind)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for facade in facades:
        for op in facade.operations():
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(facade, op, by_type)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tally", "version": __version__},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY},
    }


def _operation(facade: Facade, op: Operation, by_type: dict[int, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tags": [facade.tag],
        "summary": op.summary,
        "operationId": f"{facade.name}_{op.method.lower()}_{op.path}",
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in op.params
        ],
        "responses": {str(op.status): _success(op, by_type)} | _errors(facade, op),
    }
    if op.auth != "none":
        doc["security"] = [{op.auth: []}]
    if op.body is not None:
        content = (
            {media: {"schema": schema} for media, schema in op.body.items()}
            if isinstance(op.body, dict)
            else {"application/json": {"schema": by_type[id(op.body)]}}
        )
        doc["requestBody"] = {"required": op.body_required, "content": content}
    return doc


def _success(op: Operation, by_type: dict[int, Any]) -> dict[str, Any]:
    if op.status == 204:
        return {"description": "Done (no body)"}
    if op.response_media != "application/json":
        binary = {"type": "string", "format": "binary"}
        medias = (op.response_media,) if isinstance(op.response_media, str) else op.response_media
        return {"description": "OK", "content": {m: {"schema": binary} for m in medias}}
    schema = by_type.get(id(op.response), {})
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _errors(facade: Facade, op: Operation) -> dict[str, Any]:
    """Every error status the operation may answer, each in its family's error shape."""
    content = {facade.error_media: {"schema": facade.error_schema}}
    return {
        str(status): {"description": HTTPStatus(status).phrase, "content": content}
        for status in facade.error_statuses(op)
    }


#: The docs page's only style sheet; the Content-Security-Policy allows it by its hash.
DOCS_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
    "padding:0 1rem}code{background:#f4f4f4;padding:0 .2rem}h3{margin-bottom:.2rem}"
    ".m{font-weight:bold;display:inline-block;width:4rem}"
)


def docs_page(document: dict[str, Any]) -> str:
    """A plain HTML page listing every operation and its parameters."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Tally API</title>",
        f"<style>{DOCS_STYLE}</style></head><body>",
        "<h1>Tally API</h1><p>The machine-readable document is at ",
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append(
                f"<h3><span class='m'>{method.upper()}</span><code>{html.escape(path)}</code></h3>"
                f"<p>{html.escape(op['summary'])} <small>[{html.escape(op['tags'][0])}]</small></p>"
            )
            params = [p for p in op["parameters"] if p["in"] != "path"]
            if params:
                items = "".join(
                    f"<li><code>{html.escape(p['name'])}</code> {html.escape(p['description'])}"
                    f"{' (required)' if p['required'] else ''}</li>"
                    for p in params
                )
                parts.append(f"<ul>{items}</ul>")
    parts.append("</body></html>")
    return "".join(parts)
