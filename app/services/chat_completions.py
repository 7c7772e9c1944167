"""OpenAI's Chat Completions onto gateway sessions: which model, which session, which prompt.

A conversation is a session. Without `X-Paseo-Session` a request starts a new session, whose
first prompt carries the conversation so far; with it, the session's agent already holds the
history, so only the newest user message is sent. Underneath it is the same turn every other
route runs: stored, replayable, one at a time per session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import InvalidInput
from app.models import GatewaySession, Turn
from app.paseo.media import PromptMedia
from app.schemas import MODEL_PATTERN, PROVIDER_PATTERN, PromptImageIn, SessionCreate
from app.schemas_openai import ChatMessage
from app.services.auth import Principal
from app.services.prompt_media import DataUrlImage, check_images, image_from_url
from app.services.sessions import SessionService, check_prompt
from app.services.turn.service import TurnService

INSTRUCTION_ROLES = frozenset({"system", "developer"})
ROLE_NAMES = {"user": "User", "assistant": "Assistant", "tool": "Tool", "function": "Tool"}


@dataclass(frozen=True)
class ModelChoice:
    """A model id taken apart: `mock/ten-second-stream`, or `mock` for its default model."""

    provider: str
    model: str | None

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider


@dataclass(frozen=True)
class ChatTurn:
    """The session a request went to, the turn it started, and the model that answers."""

    session: GatewaySession
    turn: Turn
    model: str


def parse_model_id(value: str) -> ModelChoice:
    provider, slash, model = value.partition("/")
    if not re.fullmatch(PROVIDER_PATTERN, provider) or (
        slash and not re.fullmatch(MODEL_PATTERN, model)
    ):
        raise InvalidInput(
            f"model {value!r} is not a model id: use provider/model as GET /v1/models lists "
            "them (e.g. mock/ten-second-stream), or a bare provider",
            field="model",
        )
    return ModelChoice(provider, model or None)


def session_model(record: GatewaySession) -> str:
    return ModelChoice(record.provider, record.model).id


def message_text(message: ChatMessage, index: int) -> str:
    """A message's text: a string, or its `text` parts joined (images are `message_images`)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts: list[str] = []
    for part in message.content:
        if part.type == "image_url":
            continue
        if part.type != "text" or part.text is None:
            raise InvalidInput(
                f"messages[{index}] has a {part.type!r} part; only text parts are supported",
                field=f"messages[{index}].content",
            )
        texts.append(part.text)
    return "".join(texts)


def message_images(message: ChatMessage, index: int) -> list[DataUrlImage]:
    """A message's `image_url` parts, each a base64 data URL (user messages only)."""
    if not isinstance(message.content, list):
        return []
    images: list[DataUrlImage] = []
    for number, part in enumerate(message.content):
        if part.type != "image_url":
            continue
        where = f"messages[{index}].content[{number}].image_url"
        if message.role != "user":
            raise InvalidInput(f"{where}: only user messages may carry images", field=where)
        if part.image_url is None:
            raise InvalidInput(f"{where} is missing: send {{'url': 'data:...'}}", field=where)
        images.append(image_from_url(part.image_url.url, f"{where}.url"))
    return images


def conversation_images(messages: Sequence[ChatMessage]) -> list[DataUrlImage]:
    """Every image of the conversation, in order: a new session's first prompt carries the
    conversation so far, its images too."""
    return [image for index, m in enumerate(messages) for image in message_images(m, index)]


def newest_user_message(messages: Sequence[ChatMessage]) -> str:
    """What an existing session's agent is sent: the last message, which must be the user's."""
    last = len(messages) - 1
    if messages[last].role != "user":
        raise InvalidInput(
            f"the last message must be the user's (it is {messages[last].role!r}): the agent "
            "answers the newest user message",
            field=f"messages[{last}].role",
        )
    return message_text(messages[last], last)


def first_prompt(messages: Sequence[ChatMessage]) -> str:
    """A new session's first prompt: system and developer messages first, as instructions,
    then the earlier turns as a transcript, then the newest user message. A lone user
    message is sent as it is."""
    newest = newest_user_message(messages)
    instructions: list[str] = []
    transcript: list[str] = []
    for index, message in enumerate(messages[:-1]):
        text = message_text(message, index)
        if not text.strip():
            continue  # e.g. an assistant message that only called tools
        if message.role in INSTRUCTION_ROLES:
            instructions.append(text)
        else:
            transcript.append(f"{ROLE_NAMES[message.role]}: {text}")
    parts = ["\n\n".join(instructions)] if instructions else []
    if transcript:
        parts.append("The conversation so far:\n\n" + "\n\n".join(transcript))
        parts.append("Reply to the user's newest message:\n\n" + newest)
    else:
        parts.append(newest)
    return "\n\n".join(parts)


class ChatCompletionService:
    def __init__(self, sessions: SessionService, turns: TurnService) -> None:
        self.sessions = sessions
        self.turns = turns

    async def models(self) -> list[ModelChoice]:
        """Every `provider/model` a daemon can run now."""
        models = await self.sessions.providers.all_models()
        return [ModelChoice(info.provider, info.id) for info in models]

    async def start(
        self,
        model_id: str,
        messages: Sequence[ChatMessage],
        principal: Principal,
        session_id: uuid.UUID | None,
    ) -> ChatTurn:
        """Start the turn that answers `messages`: in a new session, or in `session_id`'s."""
        choice = parse_model_id(model_id)
        if session_id is not None:
            return await self._follow_up(session_id, choice, messages, principal)
        prompt = first_prompt(messages)
        images = conversation_images(messages)
        check_images(images, field="image_url")  # said in the terms of this request
        request = SessionCreate(
            provider=choice.provider,
            model=choice.model,
            prompt=prompt,
            images=[PromptImageIn(media_type=i.media_type, data=i.data) for i in images],
        )
        record, turn = await self.sessions.create(request, principal, openai_model=True)
        assert turn is not None  # a session created with a prompt has its first turn
        return ChatTurn(record, turn, session_model(record))

    async def _follow_up(
        self,
        session_id: uuid.UUID,
        choice: ModelChoice,
        messages: Sequence[ChatMessage],
        principal: Principal,
    ) -> ChatTurn:
        prompt = newest_user_message(messages)
        check_prompt(prompt, self.sessions.defaults.max_prompt_bytes)
        last = len(messages) - 1
        media = PromptMedia(
            images=check_images(message_images(messages[last], last), field="image_url")
        )
        record = await self.sessions.get(session_id, principal)
        if choice.provider != record.provider:
            raise InvalidInput(
                f"session {session_id} runs {session_model(record)}; send that model, or no "
                "X-Paseo-Session header to start a new session with this one",
                field="model",
            )
        turn, _ = await self.turns.start_turn(session_id, prompt, principal, media=media)
        return ChatTurn(record, turn, session_model(record))
