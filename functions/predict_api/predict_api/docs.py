"""An OpenAPI document that describes the served model's real features.

FastAPI cannot know them at import (the model is loaded lazily from S3), so the request
bodies of /predict and /batch_predict are filled in from the manifest each time the
document is asked for.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from model_store import Manifest, ModelUnavailableError, example_record
from predict_api.routes import ERROR_MODELS, RESPONSE_MODELS, SECURITY_SCHEMES
from predict_api.service import ModelService

_REF = "#/components/schemas/{model}"


# Swagger UI from the CDN at one exact version, each file checked by the browser against
# its hash (subresource integrity): computed from the npm tarball of swagger-ui-dist
# 5.35.0, which jsDelivr serves unchanged. To move: fetch the new tarball, hash both files
# (sha384, base64) and change all three together.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
SWAGGER_JS_SRI = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
SWAGGER_CSS_SRI = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{ui}/swagger-ui.css" integrity="{css_sri}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ui}/swagger-ui-bundle.js" integrity="{js_sri}" crossorigin="anonymous"></script>
<script>
SwaggerUIBundle({{url: {openapi}, dom_id: "#swagger-ui", persistAuthorization: true,
  deepLinking: true}});
</script>
</body>
</html>
"""


def docs_page(title: str, openapi_url: str) -> str:
    """Swagger UI for OPENAPI_URL; its Authorize button takes the key the document's
    security scheme names (x-api-key)."""
    return _PAGE.format(
        title=html.escape(title),
        ui=SWAGGER_UI,
        css_sri=SWAGGER_CSS_SRI,
        js_sri=SWAGGER_JS_SRI,
        openapi=json.dumps(openapi_url).replace("</", "<\\/"),
    )


def install(app: FastAPI, service: ModelService) -> None:
    def openapi() -> dict[str, Any]:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=app.servers or None,
        )
        try:
            manifest: Manifest | None = service.manifest()
        except ModelUnavailableError:
            manifest = None
        _describe_responses(document)
        _describe_bodies(document, service, manifest)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

    async def docs(request: Request) -> HTMLResponse:
        # The stage ("/Prod") is the root path: the page names the document under it.
        root = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(docs_page(app.title, f"{root}{app.openapi_url}"))

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def _describe_responses(document: dict[str, Any]) -> None:
    """The 200 bodies, and the schemas and key scheme that the routes' errors refer to."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (*RESPONSE_MODELS.values(), *ERROR_MODELS):
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for (path, method), model in RESPONSE_MODELS.items():
        ok = document["paths"][path][method]["responses"]["200"]
        ok["content"] = {
            "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
        }
    components["securitySchemes"] = {name: dict(s) for name, s in SECURITY_SCHEMES.items()}


def _describe_bodies(
    document: dict[str, Any], service: ModelService, manifest: Manifest | None
) -> None:
    paths = document["paths"]
    if manifest is None:
        note = "The model is not available right now; its features appear here once it is."
        for path in ("/predict", "/batch_predict"):
            paths[path]["post"]["requestBody"] = {
                "required": True,
                "description": note,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        return
    schemas = service.schemas(manifest)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (schemas.record, schemas.batch):
        schema = model.model_json_schema(ref_template=_REF, by_alias=True)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    example = example_record(manifest)
    bodies = {
        "/predict": (schemas.record.__name__, example),
        "/batch_predict": (schemas.batch.__name__, {"records": [example]}),
    }
    for path, (name, sample) in bodies.items():
        paths[path]["post"]["requestBody"] = {
            "required": True,
            "description": f"{manifest.name} version {manifest.version}: features "
            + ", ".join(manifest.feature_names),
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=name)}, "example": sample}
            },
        }
