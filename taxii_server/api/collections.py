"""Collections: GET {api-root}/collections/ and {api-root}/collections/{id}/ (§5.1, §5.2).

Only collections the caller may read or write are listed; `can_read` and
`can_write` are the caller's own rights.
"""

from flask import Blueprint

from ..app import app_services
from ..config import Collection
from ..media import STIX_MEDIA_TYPE
from ..policy import Access, access
from .common import caller, taxii_response, visible_collection

blueprint = Blueprint("collections", __name__)


@blueprint.get("/collections/")
def list_collections():
    operator = caller().operator
    resources = []
    for collection in app_services().settings.collections:
        rights = access(operator, collection)
        if rights.visible:
            resources.append(collection_resource(collection, rights))
    return taxii_response({"collections": resources} if resources else {})


@blueprint.get("/collections/<collection_id>/")
def get_collection(collection_id: str):
    collection, rights = visible_collection(collection_id)
    return taxii_response(collection_resource(collection, rights))


def collection_resource(collection: Collection, rights: Access) -> dict:
    resource = {"id": collection.id, "title": collection.title}
    if collection.description:
        resource["description"] = collection.description
    if collection.alias:
        resource["alias"] = collection.alias
    resource.update(can_read=rights.can_read, can_write=rights.can_write, media_types=[STIX_MEDIA_TYPE])
    return resource
