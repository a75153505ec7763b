"""API root information: GET {api-root}/ (§4.2)."""

from flask import Blueprint

from ..app import app_services
from ..media import TAXII_MEDIA_TYPE
from .common import taxii_response

blueprint = Blueprint("api_root", __name__)


@blueprint.get("/")
def api_root():
    settings = app_services().settings
    resource = {"title": settings.api_root_title, "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": settings.max_content_length}
    if settings.api_root_description:
        resource["description"] = settings.api_root_description
    return taxii_response(resource)
