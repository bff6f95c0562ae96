"""Models built from values that are typed already, without validation, fast.

pydantic's ``model_construct`` skips validation but still walks every field through aliases and
a dict of leftovers; for a model of 28 fields that is most of the cost of rating a record. Here
a model's fields and defaults are read once, and each instance is its ``__dict__`` in the
model's field order (so it serializes exactly as ``model_construct`` gives it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Shape:
    """A model's fields, read once: every field with its default in the model's order (required
    ones marked missing), the fields with a default factory, and the required names."""

    template: dict[str, Any]
    factories: tuple[tuple[str, Callable[[], Any]], ...]
    required: frozenset[str]


_SHAPES: dict[type[BaseModel], _Shape] = {}


def _shape(model: type[BaseModel]) -> _Shape:
    shape = _SHAPES.get(model)
    if shape is None:
        fields = model.model_fields
        shape = _Shape(
            template={
                name: _MISSING if info.is_required() else info.default
                for name, info in fields.items()
            },
            factories=tuple(
                (name, info.default_factory)  # type: ignore[misc]  # takes no argument here
                for name, info in fields.items()
                if info.default_factory is not None
            ),
            required=frozenset(name for name, info in fields.items() if info.is_required()),
        )
        _SHAPES[model] = shape
    return shape


def trusted(model: type[M], **values: Any) -> M:
    """``model.model_construct(**values)`` for values that are the model's own types already:
    every required field must be given (a missing one raises ``TypeError``); a name the model
    has no field for is ignored.

    Built per instance with C-level dict and set operations (a copy of the defaults updated
    with ``values``, which keeps the model's field order): rating builds two per record.
    """
    shape = _shape(model)
    if not shape.required <= values.keys():
        missing = sorted(shape.required - values.keys(), key=list(shape.template).index)
        msg = f"{model.__name__}: {missing[0]} is required"
        raise TypeError(msg)
    data = shape.template.copy()
    data.update(values)
    given = set(values)
    if len(data) != len(shape.template):  # names that are no field: left out
        data = {name: data[name] for name in shape.template}
        given &= shape.template.keys()
    for name, factory in shape.factories:
        if name not in values:
            data[name] = factory()
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", data)
    object.__setattr__(instance, "__pydantic_fields_set__", given)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance
