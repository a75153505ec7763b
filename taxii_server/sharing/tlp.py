"""Traffic Light Protocol markings: which level an object carries, and whether a collection may hold it.

An object's level is the highest TLP marking it carries, in
`object_marking_refs` or in any granular marking. TLP 1.0 markings of STIX 2.1
count as their TLP 2.0 counterparts (WHITE as CLEAR). Markings that are not
TLP (statements, PAP, ...) do not count. An object with no TLP marking at all
counts as its collection's `unmarked_tlp`, or is refused when that is "refuse".
"""

from __future__ import annotations

from ..config import Collection

LEVELS = ("clear", "green", "amber", "amber+strict", "red")
CLEAR, GREEN, AMBER, AMBER_STRICT, RED = range(len(LEVELS))

# TLP 2.0 marking definitions (extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d).
TLP2_MARKINGS = {
    CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# TLP 1.0, as STIX 2.1 defines it.
TLP1_MARKINGS = {
    CLEAR: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # WHITE
    GREEN: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    AMBER: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    RED: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
LEVEL_OF_MARKING = {marking: level for table in (TLP2_MARKINGS, TLP1_MARKINGS) for level, marking in table.items()}
# Material that may not leave the audience it was given to (TLP 2.0).
NOT_REDISTRIBUTABLE = AMBER_STRICT


def label(level: int) -> str:
    return f"TLP:{LEVELS[level].upper()}"


def marked_level(item: dict) -> int | None:
    """The highest TLP marking the object carries, or None when it carries none.
    Malformed marking properties are the validator's business: they count for nothing here."""
    refs = item.get("object_marking_refs")
    markings = list(refs) if isinstance(refs, list) else []
    granular = item.get("granular_markings")
    if isinstance(granular, list):
        markings += [entry.get("marking_ref") for entry in granular if isinstance(entry, dict)]
    levels = [LEVEL_OF_MARKING[m] for m in markings if isinstance(m, str) and m in LEVEL_OF_MARKING]
    return max(levels, default=None)


def level_in(item: dict, collection: Collection) -> int | None:
    """The level the object counts as in this collection; None when it is unmarked and the collection refuses that."""
    level = marked_level(item)
    if level is None and collection.unmarked_tlp != "refuse":
        level = LEVELS.index(collection.unmarked_tlp)
    return level


def refusal(item: dict, collection: Collection) -> str | None:
    """Why the collection may not hold this object, or None."""
    ceiling = LEVELS.index(collection.tlp_ceiling)
    level = level_in(item, collection)
    if level is None:
        return (f"the object carries no TLP marking, and this collection holds only objects marked "
                f"{label(CLEAR)} to {label(ceiling)}")
    if level > ceiling:
        return (f"the object is marked {label(level)} (in its object or granular markings), above the highest "
                f"this collection holds, {label(ceiling)}")
    return None
