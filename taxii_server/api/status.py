"""Status resources: GET {api-root}/status/{id}/ (§4.3).

A status is visible only to the operator whose request created it.
"""

from flask import Blueprint

from ..app import app_services
from ..errors import not_found
from .common import caller, taxii_response

blueprint = Blueprint("status", __name__)


@blueprint.get("/status/<status_id>/")
def get_status(status_id: str):
    found = app_services().store.load_status(status_id)
    if found is None or found[0] != caller().operator.id:
        raise not_found("No status resource with this id is available to you.")
    return taxii_response(found[1])
