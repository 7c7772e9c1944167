"""Bodies of the OpenAI-compatible routes (`/v1/...`), in the shapes OpenAI's clients send
and read. Fields those clients send that a Paseo agent has no use for (temperature, tools,
max_tokens, ...) are accepted and ignored; README lists them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas import PROMPT_IMAGE_EXAMPLE

MAX_MESSAGES = 10_000
EXAMPLE_DATA_URL = f"data:image/png;base64,{PROMPT_IMAGE_EXAMPLE['data']}"

ModelId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ImageUrl(_Lenient):
    url: str = Field(
        description="A base64 data URL (`data:image/png;base64,...`): the gateway fetches no "
        "http(s) URL (400). png, jpeg, gif or webp; at most 8 images of 5 MiB (20 MiB together)."
    )
    detail: str | None = Field(default=None, description="Ignored")


class ContentPart(_Lenient):
    """One part of a message's content: `text`, or (user messages) `image_url` with a data URL."""

    type: str
    text: str | None = None
    image_url: ImageUrl | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    """`POST /v1/chat/completions`."""

    model: ModelId = Field(
        description="`provider/model` (as `GET /v1/models` lists them), or a bare provider for "
        "its default model. With `X-Paseo-Session`, the session's own model answers."
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="One answer per request (an agent's turn).")

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "mock/ten-second-stream",
                    "messages": [{"role": "user", "content": "Say hello"}],
                    "stream": True,
                },
                {
                    "model": "mock/ten-second-stream",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "What is in this image?"},
                                {
                                    "type": "image_url",
                                    "image_url": {"url": EXAMPLE_DATA_URL},
                                },
                            ],
                        }
                    ],
                },
            ]
        },
    )


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Always 0: Paseo does not say when a model was made.")
    owned_by: str = Field(description="The provider.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """The error shape of OpenAI's API (on `/v1/...` only; every other route answers
    problem+json)."""

    error: OpenAIErrorDetail


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, Any] | None = None
