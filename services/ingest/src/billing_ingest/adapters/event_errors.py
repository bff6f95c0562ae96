"""What an upstream usage event that failed validation says about itself: read from its raw
JSON and from pydantic's errors here, so the use case (``service/accept_events.py``) indexes
no raw document."""

from __future__ import annotations

import json

from pydantic import ValidationError


def raw_identity(raw: bytes) -> tuple[str | None, str | None]:
    """The event's ``id`` and ``source`` where its JSON gives them as strings (else None)."""
    event_id = source = None
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            event_id = parsed.get("id") if isinstance(parsed.get("id"), str) else None
            source = parsed.get("source") if isinstance(parsed.get("source"), str) else None
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        pass
    return event_id, source


def field_and_reason(error: ValidationError) -> tuple[str | None, str]:
    """The field of the first error (dotted; None for the event as a whole) and every
    error's ``field: message``."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or None
    reason = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in error.errors()
    )
    return where, reason
