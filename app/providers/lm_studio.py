"""LM Studio: OpenAI-compatible, but strict about the shape of tool definitions."""

from __future__ import annotations

from typing import Any

from app.providers.base import Conversation
from app.providers.openai_compat import OpenAICompatibleProvider


class LMStudioProvider(OpenAICompatibleProvider):
    kind = "lm-studio"

    def build_request(
        self, body: dict[str, Any], *, model: str, conversation: Conversation
    ) -> dict[str, Any]:
        payload = super().build_request(body, model=model, conversation=conversation)
        if isinstance(payload.get("tools"), list):
            payload["tools"] = [_normalise_tool(tool) for tool in payload["tools"]]
        return payload


def _normalise_tool(tool: Any) -> Any:
    """Give each function a description and an object schema; drop ``strict``."""
    if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
        return tool
    function = {key: value for key, value in tool["function"].items() if key != "strict"}
    function.setdefault("description", f"Function {function.get('name', '')}".strip())
    parameters = function.get("parameters")
    parameters = dict(parameters) if isinstance(parameters, dict) else {}
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    function["parameters"] = parameters
    return {**tool, "function": function}
