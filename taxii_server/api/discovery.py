"""Server discovery: GET /taxii2/ (§4.1)."""

from flask import Blueprint

from ..app import app_services
from .common import taxii_response

blueprint = Blueprint("discovery", __name__)


@blueprint.get("/taxii2/")
def discovery():
    settings = app_services().settings
    root = f"/{settings.api_root_path}/"
    resource = {"title": settings.title, "default": root, "api_roots": [root]}
    if settings.description:
        resource["description"] = settings.description
    if settings.contact:
        resource["contact"] = settings.contact
    return taxii_response(resource)
