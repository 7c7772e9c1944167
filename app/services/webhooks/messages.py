"""A delivery as its receiver sees it: the Standard Webhooks id, body and signature.

The body is `{type, timestamp, data}`; `data` is what the event carried, with `session_id`
and `turn_id`. Its bytes never change between attempts, and neither does the id, so a
receiver can drop a repeat; the signature is made anew at each attempt, over its own time.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook as Signer

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret in the `whsec_<base64>` form every Standard Webhooks library reads."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_id(delivery_id: uuid.UUID) -> str:
    """The `webhook-id` header: the delivery's own, the same at every attempt."""
    return f"msg_{delivery_id.hex}"


def body(
    event: str,
    occurred_at: datetime,
    data: dict[str, Any],
    session_id: uuid.UUID | None,
    turn_id: uuid.UUID | None,
) -> bytes:
    payload = {
        "type": event,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": {
            **data,
            "session_id": str(session_id) if session_id else None,
            "turn_id": str(turn_id) if turn_id else None,
        },
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, msg_id: str, sent_at: datetime, content: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt sent at `sent_at`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Signer(secret).sign(msg_id, sent_at, content),
    }
