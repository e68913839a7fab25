"""A client for any OpenAI-compatible Chat Completions endpoint (llama.cpp, vLLM, Ollama, OpenAI).

Every failure (unreachable, timeout, HTTP error, a reply that is not a chat completion) is one
:class:`LLMError` whose message says which, so the answerer can fall back and say why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx

from search_service.settings import Settings

logger = logging.getLogger(__name__)

# Greedy decoding: the model stays close to the quoted sections instead of improvising around them,
# and the same question over the same sections gets the same answer (a fixed seed for servers that sample anyway).
TEMPERATURE = 0.0
SEED = 0
# A server that does not accept the connection within this many seconds is down, whatever the read timeout.
MAX_CONNECT_SECONDS = 5.0


class LLMError(RuntimeError):
    """The LLM failed, timed out, or returned something unusable; the message says which."""


class ChatMessage(TypedDict):
    """One message of a chat completion request."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatClient:
    """Calls ``{base_url}/chat/completions``; one HTTP request per call, nothing kept open."""

    base_url: str  # e.g. http://127.0.0.1:8080/v1
    model: str
    timeout: float  # seconds to wait for the reply
    max_tokens: int
    api_key: str = ""  # sent as a bearer token when set

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatClient | None:
        """The client ``KB_LLM_*`` describe; None when ``KB_LLM_BASE_URL`` is empty (no LLM configured)."""
        if not settings.llm_base_url:
            return None
        return cls(base_url=settings.llm_base_url, model=settings.llm_model, api_key=settings.llm_api_key,
                   timeout=settings.llm_timeout, max_tokens=settings.llm_max_tokens)

    def complete(self, messages: list[ChatMessage]) -> str:
        """One non-streaming completion: the reply's text. Raises LLMError on any failure."""
        with self._errors():
            response = httpx.post(self._url, headers=self._headers, json=self._body(messages, stream=False),
                                  timeout=self._timeout)
            response.raise_for_status()
            return _text(response.json()["choices"][0]["message"]["content"] or "")

    def stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        """Yield the reply's text pieces as the server sends them. Raises LLMError on any failure."""
        with self._errors(), httpx.stream("POST", self._url, headers=self._headers,
                                          json=self._body(messages, stream=True), timeout=self._timeout) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                if delta:
                    yield _text(delta)

    @property
    def _url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=min(MAX_CONNECT_SECONDS, self.timeout))

    def _body(self, messages: list[ChatMessage], *, stream: bool) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "temperature": TEMPERATURE, "seed": SEED,
                "max_tokens": self.max_tokens, "stream": stream}

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn every transport or format failure of the call into one LLMError with a reason."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise LLMError(f"LLM timed out after {self.timeout:g}s") from exc
        except httpx.HTTPStatusError as exc:
            raise LLMError(f"LLM returned HTTP {exc.response.status_code}") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM unreachable: {type(exc).__name__}") from exc
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError("LLM returned a malformed response") from exc


def _text(value: object) -> str:
    """The text of a reply; anything else is a malformed response."""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value
