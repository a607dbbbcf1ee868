"""A config error as the one line a user sees: the key as they wrote it, and what it allows.

pydantic's location of an error has steps a stack file does not: the member of a union it tried (`server.hetzner.type`
for the key `server.type`, `registry.Registry.server` for `registry.server`). The walk below follows the location
through the models' annotations to leave those out and to find the model an unknown key was given to.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from components.config.types import PATTERN_HELP


class ConfigError(ValueError):
    """A stack config mistake; str() is the one line to show the user."""


def how_to_set_secret(name: str) -> str:
    """The command that sets secret `name`, its value from a prompt or stdin: a value on a command line is seen in
    `ps` and kept in the shell's history."""
    return f'pulumi config set --secret {name} (it prompts; or printf %s "$VALUE" | pulumi config set --secret {name})'


def one_line(error: ErrorDetails, root: type[BaseModel]) -> str:
    """The line for one of pydantic's errors validating `root`."""
    place = _place(root, [str(part) for part in error["loc"]])
    key = ".".join(place.key)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"quayside config: {key}: unknown key; allowed: {', '.join(place.keys)}"
    if error["type"] == "missing":
        return f"quayside config: {key}: required"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return f"quayside config: {key}.{place.tag}: must be one of {', '.join(place.tags)}"
    if error["type"] == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        message = "must be " + PATTERN_HELP.get(pattern, f"text matching {pattern}")
        if place.key and place.key[-1] == "[key]":
            key = ".".join(place.key[:-1]) + f" (name {place.key[-2]!r})"
    got = error.get("input")
    plain = not isinstance(got, dict | list) and got is not None and not error["type"].startswith("value_error")
    shown = f" (got {got!r})" if plain else ""
    # Messages raised by our validators already name their own key when it is not the location's.
    return f"quayside config: {key + ': ' if key else ''}{message}{shown}"


@dataclass
class _Place:
    """Where a location leads: the key as written, the keys of the model its last step is in, and, when it ends
    at a union told apart by a tag (`provider`), that tag and its values."""

    key: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    tag: str = ""
    tags: list[str] = field(default_factory=list)


def _place(root: type[BaseModel], loc: Sequence[str]) -> _Place:
    place = _Place(keys=list(root.model_fields))
    annotation: Any = root
    tag: str | None = None  # what tells the members of the union at `annotation` apart, if anything
    for part in loc:
        annotation = _without_none(annotation)
        members = _union_members(annotation)
        if _is_model(annotation):
            place.keys = list(annotation.model_fields)
            info = annotation.model_fields.get(part)
            annotation = None if info is None else info.annotation
            tag = info.discriminator if info is not None and isinstance(info.discriminator, str) else None
            tag = tag or _discriminator(annotation)
        elif get_origin(annotation) in (dict, list):  # the step is a map's key or a list's index
            annotation = get_args(annotation)[-1]
            tag = _discriminator(annotation)
        elif (member := _member_named(part, members, tag)) is not None:
            annotation = member  # the member pydantic tried: no key of the stack file
            continue
        else:
            annotation = None
        place.key.append(part)
    members = _union_members(_without_none(annotation))
    if tag is not None and members:
        place.tag, place.tags = tag, [str(_tag_value(member, tag)) for member in members]
    return place


def _member_named(part: str, members: Sequence[Any], tag: str | None) -> Any | None:
    """The union member a step of a location names: by its class (Registry), or by its tag's value (hetzner)."""
    return next((m for m in members if _is_model(m) and part in (m.__name__, _tag_value(m, tag))), None)


def _tag_value(member: Any, tag: str | None) -> str | None:
    """The value of a union member's tag field (`provider: hetzner`), if it is a model with one."""
    info = member.model_fields.get(tag) if _is_model(member) and tag is not None else None
    values = get_args(info.annotation) if info is not None and get_origin(info.annotation) is Literal else ()
    return str(values[0]) if values else None


def _discriminator(annotation: Any) -> str | None:
    """The tag of a union annotated with one (`Server`), also as `Server | None` or a map's values."""
    if get_origin(annotation) is Annotated:
        found = (getattr(meta, "discriminator", None) for meta in get_args(annotation)[1:])
        return next((tag for tag in found if isinstance(tag, str)), None)
    members = [arg for arg in _union_members(annotation) if arg is not type(None)]
    return _discriminator(members[0]) if len(members) == 1 else None


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        return _without_none(get_args(annotation)[0])
    members = [arg for arg in _union_members(annotation) if arg is not type(None)]
    if len(members) == 1:
        return _without_none(members[0])
    return Union[tuple(members)] if members else annotation  # noqa: UP007 (a Union built at run time)


def _union_members(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
