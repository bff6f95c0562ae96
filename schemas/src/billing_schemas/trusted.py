"""Models built from values that are typed already, without validation, fast.

pydantic's ``model_construct`` skips validation but still walks every field through aliases and
a dict of leftovers; for a model of 28 fields that is most of the cost of rating a record. Here
a model's fields and defaults are read once, and each instance is its ``__dict__`` in the
model's field order (so it serializes exactly as ``model_construct`` gives it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_MISSING = object()
_Fields = list[tuple[str, Any, Callable[[], Any] | None]]
_FIELDS: dict[type[BaseModel], _Fields] = {}


def _fields(model: type[BaseModel]) -> _Fields:
    fields = _FIELDS.get(model)
    if fields is None:
        fields = [
            (
                name,
                _MISSING if info.is_required() else info.default,
                info.default_factory,  # type: ignore[misc]  # takes no argument here
            )
            for name, info in model.model_fields.items()
        ]
        _FIELDS[model] = fields
    return fields


def trusted(model: type[M], **values: Any) -> M:
    """``model.model_construct(**values)`` for values that are the model's own types already:
    every required field must be given (a missing one raises ``TypeError``)."""
    data: dict[str, Any] = {}
    for name, default, factory in _fields(model):
        value = values.get(name, _MISSING)
        if value is _MISSING:
            if factory is not None:
                value = factory()
            elif default is _MISSING:
                msg = f"{model.__name__}: {name} is required"
                raise TypeError(msg)
            else:
                value = default
        data[name] = value
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", data)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance
