"""JSON types of STIX properties, which the stix2 library does not enforce.

stix2 coerces what it can (a `name` of 42 becomes "42", a `labels` of "x"
becomes ["x"]), but the server stores and serves the object as it was sent,
so an ill-typed value would reach every client. This module holds each
property's value to the JSON type the STIX 2.1 specification gives it.
"""

from __future__ import annotations

from stix2 import properties as P

# First match wins, so subclasses come before the classes they extend.
_EXPECTED = (
    (P.BooleanProperty, bool, "a boolean"),
    (P.IntegerProperty, int, "an integer"),
    (P.FloatProperty, (int, float), "a number"),
    (P.ListProperty, list, "a list"),
    ((P.DictionaryProperty, P.HashesProperty, P.ExtensionsProperty, P.EmbeddedObjectProperty,
      P.ObservableProperty), dict, "an object"),
    ((P.StringProperty, P.TimestampProperty, P.IDProperty, P.ReferenceProperty, P.TypeProperty,
      P.PatternProperty, P.BinaryProperty, P.HexProperty, P.EnumProperty, P.OpenVocabProperty), str, "a string"),
)


def json_type_problem(values: dict, properties: dict, where: str = "") -> str | None:
    """The first property of `values` whose JSON type is wrong, described; else None.

    Properties unknown to the class (custom ones) are left alone."""
    for name, value in values.items():
        declared = properties.get(name)
        if declared is not None:
            problem = _value_problem(value, declared, f"{where}{name}")
            if problem:
                return problem
    return None


def _value_problem(value, declared: P.Property, where: str) -> str | None:
    for kinds, json_type, described in _EXPECTED:
        if isinstance(declared, kinds):
            # bool is an int in Python, but true is no integer in JSON.
            if not isinstance(value, json_type) or (isinstance(value, bool) and json_type is not bool):
                return f"{where} must be {described}, not {_json_name(value)}."
            break
    if isinstance(declared, P.ListProperty):
        return _list_problem(value, declared.contained, where)
    if isinstance(declared, P.EmbeddedObjectProperty):
        return json_type_problem(value, declared.type._properties, f"{where}.")
    return None


def _list_problem(items: list, contained, where: str) -> str | None:
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if isinstance(contained, P.Property):
            problem = _value_problem(item, contained, here)
        elif hasattr(contained, "_properties"):  # a STIX class such as KillChainPhase
            problem = (f"{here} must be an object, not {_json_name(item)}." if not isinstance(item, dict)
                       else json_type_problem(item, contained._properties, f"{here}."))
        else:
            problem = None
        if problem:
            return problem
    return None


def _json_name(value) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
