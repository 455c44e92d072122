"""The text a length predictor should see for an OpenAI-style request body.

Predictors are trained on the user's prompt text, not on a chat template's wrapping, so chat messages are
rendered as their text contents joined by blank lines (a single user message gives exactly its text).
Returns None when the body holds no text to score (token-id prompts, unknown shapes): the caller then uses a
neutral priority. Bodies that the server would reject are never judged here; they only fall back to neutral.
"""

from __future__ import annotations

from typing import Any

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ROUTES = (COMPLETIONS, CHAT, RESPONSES)


def prompt_texts(path: str, body: Any) -> list[str] | None:
    """The texts to score for a request to `path` (several for a batched completions request), or None."""
    if not isinstance(body, dict):
        return None
    if path == COMPLETIONS:
        return _completion_prompts(body.get("prompt"))
    if path == CHAT:
        return _one(render_messages(body.get("messages")))
    if path == RESPONSES:
        parts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
        value = body.get("input")
        rendered = value if isinstance(value, str) else render_messages(value)
        return _one("\n\n".join([*parts, rendered]) if rendered is not None else None)
    return None


def render_messages(messages: Any) -> str | None:
    """Text contents of chat messages (or Responses input items) joined by blank lines; None if none is text."""
    if not isinstance(messages, list):
        return None
    texts = [text for message in messages if isinstance(message, dict) for text in _content_texts(message)]
    return "\n\n".join(texts) if texts else None


def _content_texts(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []


def _completion_prompts(prompt: Any) -> list[str] | None:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    return None


def _one(text: str | None) -> list[str] | None:
    return None if text is None else [text]
