"""Request bodies of the OpenAI-compatible endpoints, validated strictly.

Strict types (no "5" → 5 coercion), the OpenAI ranges, and a clear 400 for parameters we do not implement
(n > 1, logprobs, tools, penalties, ...) rather than silently ignoring them. Unknown fields are ignored (the
official clients send a few). blockattn's own fields, sent by the official client through `extra_body`:

    "documents": [{"text": "..."}, ...]   each document is a context block (cached); none → full attention
    "segment":   "none" | "auto"          "auto": cut documents into blocks with the segmenter
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from blockattn.engine.server.errors import APIError

Temperature = Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Penalty = Annotated[float, Field(allow_inf_nan=False)]


# Parameters of the OpenAI API that blockattn does not implement: (does this value need them?, the 400 message).
# Refusing them is better than silently answering something else than what was asked.
_UNSUPPORTED = {
    "n": (lambda v: v != 1, "only n=1 is supported"),
    "presence_penalty": (lambda v: v != 0, "penalties are not supported (use 0)"),
    "frequency_penalty": (lambda v: v != 0, "penalties are not supported (use 0)"),
    "logit_bias": (bool, "logit_bias is not supported"),
    "logprobs": (bool, "logprobs are not supported"),
    "tools": (bool, "tools are not supported"),
    "response_format": (lambda v: v.get("type", "text") != "text", "only the text response format is supported"),
    "echo": (bool, "echo is not supported"),
    "best_of": (lambda v: v != 1, "best_of is not supported"),
    "suffix": (bool, "suffix is not supported"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class Document(_Strict):
    text: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("document text is empty")
        if "\x00" in text:
            raise ValueError("document text contains a NUL byte")
        return text


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def as_chat(self) -> dict:
        """{"role", "content": str} for the chat template ("developer" is OpenAI's newer name for system)."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(_Strict):
    include_usage: bool = False


class _Generation(_Strict):
    model: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Temperature = 1.0  # OpenAI's default; 0 is greedy
    top_p: TopP = 1.0
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    presence_penalty: Penalty = 0.0
    frequency_penalty: Penalty = 0.0
    logit_bias: dict[str, Any] | None = None
    user: str | None = None
    documents: list[Document] | None = None
    segment: Literal["none", "auto"] = "none"

    @field_validator(*_UNSUPPORTED, check_fields=False)
    @classmethod
    def _supported(cls, value, info: ValidationInfo):
        rejects, why = _UNSUPPORTED[info.field_name]
        if value is not None and rejects(value):
            raise ValueError(why)
        return value

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop):
        for s in [stop] if isinstance(stop, str) else stop or []:
            if not s:
                raise ValueError("stop strings must be non-empty")
        return stop

    @property
    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def document_texts(self) -> list[str]:
        return [d.text for d in self.documents or []]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Generation):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[Message]) -> list[Message]:
        if messages[-1].role != "user":
            raise ValueError("the last message must come from the user")
        return messages

    @property
    def new_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Generation):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] | Annotated[list[int], Field(min_length=1)] \
        | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16  # OpenAI's default for completions
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None
    logprobs: int | None = None

    @property
    def prompt_input(self) -> str | list[int]:
        """The single prompt: a string or token ids (a one-element list is unwrapped)."""
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], (str, list)):
            return self.prompt[0]
        return self.prompt

    @property
    def new_tokens(self) -> int | None:
        return self.max_tokens


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def parse(model: type[_Generation], data: Any) -> _Generation:
    """Validate a decoded JSON body; the first problem becomes a 400 naming the offending parameter."""
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        # drop the union-member tags pydantic puts into locations ("prompt.list[int].0" → "prompt.0")
        parts = [str(p) for p in error["loc"] if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p))]
        param = ".".join(parts) or None
        message = error["msg"].removeprefix("Value error, ")
        raise APIError(400, f"{param}: {message}" if param else message, param=param) from None
