"""The OpenAPI 3 description of this API: GET /taxii2/openapi.yaml.

Served without credentials (app.PUBLIC_ENDPOINTS): it is the published
`schemas/openapi.yaml` with the deployment's API root path in place of `/api/`,
and says nothing about operators, collections or objects.
"""

from __future__ import annotations

from functools import lru_cache

import yaml
from flask import Blueprint, Response

from ..app import app_services
from ..config import schemas_dir

blueprint = Blueprint("openapi", __name__)

MEDIA_TYPE = "application/yaml"
SHIPPED_ROOT = "api"


@blueprint.get("/taxii2/openapi.yaml")
def description():
    return Response(_document(app_services().settings.api_root_path), content_type=MEDIA_TYPE)


@lru_cache(maxsize=4)
def _document(api_root: str) -> bytes:
    text = (schemas_dir() / "openapi.yaml").read_bytes()
    if api_root == SHIPPED_ROOT:
        return text  # as published, comments included
    document = yaml.safe_load(text)
    document["paths"] = {_rooted(path, api_root): item for path, item in document["paths"].items()}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()


def _rooted(path: str, api_root: str) -> str:
    prefix = f"/{SHIPPED_ROOT}/"
    return f"/{api_root}/{path[len(prefix):]}" if path.startswith(prefix) else path
