"""A turn as items: what a UI or an SDK renders, folded from the turn's stored events.

The events say what happened, one change at a time (a text delta, a tool call's next state);
the items say what there is: the prompt, each block of reply text or reasoning, each tool call
in its final state, the task list as it stands, each permission request with its answer, and
what the turn used. Names follow OpenAI Responses' items where they fit (`message` with
`input_text`/`output_text` parts, `reasoning`).

`fold_items` is the whole rule, a pure function; `read_turn_items` reads a turn and its events
and folds them. Each item carries `id` (`<turn_id>:<first_seq>`, stable while the turn goes
on), and `first_seq`/`last_seq`, the events it was folded from: a client goes on live with
`?after=` the turn's `last_seq` and folds the later events the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import TurnNotFound
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.services.access import get_visible_session
from app.services.auth import Principal
from app.services.turn.events import StoredEvent
from app.services.turn.states import PERMISSION_REQUESTED, PERMISSION_RESOLVED, TERMINAL_EVENTS

Item = dict[str, Any]
# Events read from storage per query while a turn's items are read.
READ_PAGE_SIZE = 1000
# Usage keys every `usage` item has (None: not reported), and those it has only when reported.
USAGE_KEYS = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd")
OPTIONAL_USAGE_KEYS = ("context_window_used_tokens", "context_window_max_tokens")


class _Folder:
    """Folds one turn's events, in order, into its items."""

    def __init__(self, turn_id: uuid.UUID, prompt: str) -> None:
        self.turn_id = turn_id
        self.prompt: Item = self._item(0, "message", role="user", content=_input_text(prompt))
        self.items: list[Item] = [self.prompt]
        self.open_block: Item | None = None  # the text or reasoning item deltas extend
        self.tools: dict[str, Item] = {}
        self.permissions: dict[str, Item] = {}
        self.todo: Item | None = None

    def _item(self, seq: int, item_type: str, /, **fields: Any) -> Item:
        item: Item = {"id": f"{self.turn_id}:{seq}", "type": item_type, **fields}
        item.update(first_seq=seq, last_seq=seq)
        return item

    def _add(self, seq: int, item_type: str, /, **fields: Any) -> Item:
        """A new item, after every other: the text or reasoning block before it is closed."""
        item = self._item(seq, item_type, **fields)
        self.items.append(item)
        self.open_block = None
        return item

    def fold(self, event: StoredEvent) -> None:
        data = event.data
        if event.name == "turn.started":
            self._started(event.seq, data)
        elif event.name in ("text", "reasoning"):
            self._delta(event.seq, event.name, str(data.get("delta") or ""))
        elif event.name == "tool":
            self._tool(event.seq, data)
        elif event.name == "todo":
            self._todo(event.seq, data)
        elif event.name == "notice":
            self._add(event.seq, "notice", kind=data.get("kind"), text=data.get("text"))
        elif event.name == PERMISSION_REQUESTED:
            self._permission_requested(event.seq, data)
        elif event.name == PERMISSION_RESOLVED:
            self._permission_resolved(event.seq, data)
        elif event.name == "turn.steered":
            content = _input_text(str(data.get("prompt") or ""))
            self._add(event.seq, "message", role="user", content=content)
        elif event.name in TERMINAL_EVENTS and data.get("usage"):
            self._add(event.seq, "usage", **_usage(data["usage"]))
        # agent.created, turn.queued, turn.cancelling: nothing to show as an item

    def _started(self, seq: int, data: dict[str, Any]) -> None:
        """The prompt's item takes the number of `turn.started`, and what media it lists."""
        self.prompt.update(id=f"{self.turn_id}:{seq}", first_seq=seq, last_seq=seq)
        for media in ("images", "attachments"):
            if data.get(media):
                self.prompt[media] = list(data[media])

    def _delta(self, seq: int, name: str, delta: str) -> None:
        block = self.open_block
        kind = "message" if name == "text" else "reasoning"
        if block is None or block["type"] != kind:
            if kind == "message":
                content = [{"type": "output_text", "text": ""}]
                block = self._add(seq, kind, role="assistant", content=content)
            else:
                block = self._add(seq, kind, text="")
            self.open_block = block
        if kind == "message":
            block["content"][0]["text"] += delta
        else:
            block["text"] += delta
        block["last_seq"] = seq

    def _tool(self, seq: int, data: dict[str, Any]) -> None:
        """One item per call, where it first appeared; its later states merged over it."""
        call_id = str(data.get("call_id") or f"{self.turn_id}:tool:{seq}")
        known = self.tools.get(call_id)
        if known is None:
            self.tools[call_id] = self._add(
                seq,
                "tool_call",
                call_id=call_id,
                name=data.get("name"),
                kind=data.get("kind"),
                status=data.get("status"),
                detail=dict(data.get("detail") or {}),
                error=data.get("error"),
            )
            return
        for key in ("name", "kind", "status", "error"):
            if data.get(key) is not None:
                known[key] = data[key]
        known["detail"] = {**known["detail"], **(data.get("detail") or {})}
        known["last_seq"] = seq

    def _todo(self, seq: int, data: dict[str, Any]) -> None:
        """The task list as it stands, at the place of its first appearance."""
        state = {key: data.get(key) for key in ("items", "completed", "total")}
        if self.todo is None:
            self.todo = self._add(seq, "todo", **state)
        else:
            self.todo.update(state, last_seq=seq)

    def _permission_requested(self, seq: int, data: dict[str, Any]) -> None:
        permission_id = str(data.get("permission_id") or "")
        fields = {
            key: data.get(key)
            for key in ("name", "kind", "title", "description", "input", "actions")
        }
        fields["actions"] = list(fields["actions"] or [])
        known = self.permissions.get(permission_id)
        if known is not None:  # asked again (not expected): the later words win
            known.update(fields, last_seq=seq)
            return
        self.permissions[permission_id] = self._add(
            seq, "permission_request", permission_id=permission_id, **fields, resolution=None
        )

    def _permission_resolved(self, seq: int, data: dict[str, Any]) -> None:
        known = self.permissions.get(str(data.get("permission_id") or ""))
        if known is None:
            return  # an answer to a request this turn never showed
        known["resolution"] = {
            "behavior": data.get("behavior"),
            "by": data.get("by"),
            "message": data.get("message"),
        }
        known["last_seq"] = seq


def _input_text(text: str) -> list[dict[str, Any]]:
    return [{"type": "input_text", "text": text}]


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The terminal event's usage as an item's fields: the context window only if known."""
    fields = {key: usage.get(key) for key in USAGE_KEYS}
    fields.update({key: usage[key] for key in OPTIONAL_USAGE_KEYS if usage.get(key) is not None})
    return fields


def fold_items(turn_id: uuid.UUID, prompt: str, events: Iterable[StoredEvent]) -> list[Item]:
    """The turn's items, in order, from its events (in order; a running turn's so far).

    - the prompt first: `message`, role `user`, with the `images`/`attachments` `turn.started`
      lists; a prompt steered into the turn (`turn.steered`) is one more, where it joined;
    - contiguous `text` deltas: one `message`, role `assistant`; contiguous `reasoning`
      deltas: one `reasoning`; any new item between them starts a new block;
    - `tool_call`: one per call_id where it first appeared, in its last state (each later
      event's fields and detail keys over the earlier ones');
    - `todo`: one, where the list first appeared, as it stands now;
    - `permission_request`, with `resolution` once answered; `notice`;
    - `usage`: the terminal event's usage, last, if the turn has any.
    """
    folder = _Folder(turn_id, prompt)
    for event in events:
        folder.fold(event)
    return folder.items


@dataclass(frozen=True)
class TurnItems:
    """A turn read as items; `last_seq`: the last event folded (0: none yet)."""

    turn_id: uuid.UUID
    session_id: uuid.UUID
    status: str
    last_seq: int
    items: list[Item]


async def read_turn_items(
    reads: AsyncSession, session_id: uuid.UUID, turn_id: uuid.UUID, principal: Principal | None
) -> TurnItems:
    """The turn's items from storage (SessionNotFound/TurnNotFound as `GET …/turns/{id}`).

    The turn row is read before its events, so a turn that ended meanwhile says so by its
    terminal event: the status is that event's then.
    """
    await get_visible_session(reads, session_id, principal)
    turn = await turns_repo.get_turn(reads, turn_id, session_id=session_id)
    if turn is None:
        raise TurnNotFound(f"session {session_id} has no turn {turn_id}")
    events = await _stored_events(reads, turn_id)
    status = turn.status
    if events and events[-1].name in TERMINAL_EVENTS:
        status = str(events[-1].data.get("status") or status)
    last_seq = events[-1].seq if events else 0
    items = fold_items(turn_id, turn.prompt, events)
    return TurnItems(turn_id, session_id, status, last_seq, items)


async def _stored_events(reads: AsyncSession, turn_id: uuid.UUID) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    while True:
        after = events[-1].seq if events else 0
        rows = await events_repo.list_events(reads, turn_id, after_seq=after, limit=READ_PAGE_SIZE)
        events += [StoredEvent(row.seq, row.name, dict(row.data or {})) for row in rows]
        if len(rows) < READ_PAGE_SIZE:
            return events
