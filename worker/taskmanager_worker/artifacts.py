"""Artifacts in task outputs: how they travel from the executor to the API.

A backend returns its output with Artifact objects where binary outputs go. The executor encodes
the output as JSON with a placeholder string in each artifact's place (a token with a random part,
so no real output can contain it) and sends the artifacts beside the JSON. The worker uploads each
artifact, then splices what describes the upload (`url`, `content_type`, `bytes` and the
artifact's `meta`) over its placeholder, without decoding the rest of the output.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .backends import Artifact


def encode(output: dict[str, Any]) -> tuple[str, list[tuple[str, Artifact]]]:
    """Encodes a backend's output as JSON; returns it and its artifacts with their placeholders.

    Raises TypeError or ValueError for an output that is not JSON (NaN included), or that names an
    artifact twice.
    """
    nonce = uuid.uuid4().hex
    found: list[tuple[str, Artifact]] = []
    names: set[str] = set()

    def placeholder(value: Any) -> str:
        if not isinstance(value, Artifact):
            raise TypeError(f"the output holds a {type(value).__name__}, which is not JSON")
        if value.name in names:
            raise ValueError(f"the output names the artifact {value.name!r} twice")
        names.add(value.name)
        try:
            json.dumps(value.meta, allow_nan=False)  # checked here, where a backend's mistake is reported
        except (TypeError, ValueError) as error:
            raise TypeError(f"the meta of artifact {value.name!r} is not JSON: {error}") from None
        token = f"@taskmanager-artifact:{nonce}:{len(found)}@"
        found.append((token, value))
        return token

    text = json.dumps(output, separators=(",", ":"), allow_nan=False, default=placeholder)
    return text, found


def describe(artifact: Artifact, answer: Any) -> dict[str, Any]:
    """What replaces an artifact in the output, from the API's 201 answer to its upload."""
    if not isinstance(answer, dict) or not isinstance(answer.get("url"), str) or not answer["url"]:
        raise ValueError(f"the upload of {artifact.name} answered without a url: {answer!r}")
    size = answer.get("bytes")
    content_type = answer.get("content_type")
    return {
        "url": answer["url"],
        "content_type": content_type if isinstance(content_type, str) and content_type else artifact.content_type,
        "bytes": size if isinstance(size, int) and not isinstance(size, bool) else len(artifact.data),
        **artifact.meta,
    }


def fill(output_json: str, replacements: list[tuple[str, dict[str, Any]]]) -> str:
    """Puts each description in its placeholder's place in the encoded output."""
    for token, value in replacements:
        # The token is ASCII without quotes or backslashes, so its JSON form is itself in quotes.
        quoted = f'"{token}"'
        if output_json.count(quoted) != 1:
            raise ValueError(f"the output does not hold the placeholder {token} exactly once")
        output_json = output_json.replace(quoted, json.dumps(value, separators=(",", ":"), allow_nan=False))
    return output_json
