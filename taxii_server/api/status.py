"""Status resources: GET {api-root}/status/{id}/ (§4.3).

A status is visible only to the operator whose request created it.
"""

from flask import Blueprint

from .. import retention
from ..app import app_services
from ..errors import not_found
from .common import caller, taxii_response

blueprint = Blueprint("status", __name__)


@blueprint.get("/status/<status_id>/")
def get_status(status_id: str):
    services = app_services()
    retention.purge_expired_statuses(services.store, services.settings.work.status_retention_seconds)
    found = services.store.load_status(status_id)
    if found is None or found[0] != caller().operator.id:
        raise not_found("No status resource with this id is available to you.")
    return taxii_response(found[1])
