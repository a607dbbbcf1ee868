"""The configuration reference (docs/configuration.md), generated from the config models.

Every key comes from the pydantic models in components/config.py: its dotted path (`roles.<name>.health.path`),
its description, its default, its type and allowed values (patterns in words, from config.PATTERN_HELP), and
an example value taken from EXAMPLES (components/config/examples.py), complete stacks that validate. Nothing
here is written by hand per key, so a field added to a model shows up here; a field without a description or an
example fails tests/unit/test_reference.py.

    render()                     the whole reference (markdown)
    render(sections=["roles"])   one top-level section
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from components import config
from components.config import examples as example_stacks

# Dict keys and list items in a dotted path.
NAME_PLACEHOLDER: Final = "<name>"
ITEM_PLACEHOLDER: Final = "[]"
SECRETS_SECTION: Final = "secrets"
# A container key's example is shown inline when its flow form is this short; else the section's block shows it.
INLINE_EXAMPLE_MAX: Final = 100

# Complete stacks that validate, together setting every key; the first gives each section's example block.
EXAMPLES: Final = example_stacks.reference()


@dataclass(frozen=True)
class SecretKey:
    key: str
    needed: str
    what: str


# The config secrets StackConfig.secret_names() asks for (tests/unit/test_reference.py checks they agree).
SECRET_KEYS: Final = (
    SecretKey(
        "ssh_private_key",
        "unless `server.private_key_file` names a key file",
        "the private SSH key the deploy connects to the server with (OpenSSH format); with `server.provider: "
        "hetzner` its public half is `server.ssh_public_key`",
    ),
    SecretKey(
        "registry_password",
        "when `registry.username` is set",
        "the registry password or access token: the server logs in with it before pulling, and builds push with it",
    ),
    SecretKey(
        "<NAME>",
        "for each name listed in any `roles.<name>.env.secret`",
        "the variable's value, e.g. `DATABASE_URL`: written into the role's 0600 env file on the server, "
        "never into a command; `DATABASE_URL` comes from `accessories.postgres` when there is one",
    ),
    SecretKey(
        "postgres_password",
        "with `accessories.postgres`",
        "the database password, set when its data directory is first initialised",
    ),
    SecretKey(
        "backup_passphrase",
        "with `accessories.backup`",
        "the gpg passphrase the backups are encrypted with: without it no backup can be restored",
    ),
    SecretKey("s3_access_key_id", "with `accessories.backup`", "the S3 access key the backups are uploaded with"),
    SecretKey("s3_secret_access_key", "with `accessories.backup`", "the secret half of `s3_access_key_id`"),
    SecretKey("betterstack_token", "with `accessories.vector`", "the Better Stack source token the logs are sent with"),
)


@dataclass(frozen=True)
class Step:
    """One step of a key's path: a field, any dict value (`<name>`), any list item, or a union variant."""

    kind: Literal["field", "name", "item", "variant"]
    key: str = ""
    value: str = ""


@dataclass(frozen=True)
class Entry:
    path: tuple[Step, ...]
    description: str
    type: str
    default: str
    variant: str | None
    container: bool

    @property
    def dotted(self) -> str:
        return dotted(self.path)

    @property
    def key(self) -> str:
        return self.path[-1].key


@dataclass
class Section:
    name: str
    entries: list[Entry] = field(default_factory=list)


def dotted(path: Sequence[Step]) -> str:
    parts: list[str] = []
    for step in path:
        if step.kind == "field":
            parts.append(step.key)
        elif step.kind == "name":
            parts.append(NAME_PLACEHOLDER)
        elif step.kind == "item":
            parts[-1] += ITEM_PLACEHOLDER
    return ".".join(parts)


# --- walking the models --------------------------------------------------------------------------------------


def entries(
    model: type[BaseModel], prefix: tuple[Step, ...] = (), variant: str | None = None, optional_parent: str = ""
) -> Iterator[Entry]:
    """Every key of `model` and of the models inside it, depth first, in declaration order."""
    for name, info in model.model_fields.items():
        path = (*prefix, Step("field", name))
        inner, optional = _unwrap_optional(info.annotation)
        children = _children(inner, info)
        kinds = [step for child_path, _, _ in children for step in child_path if step.kind == "variant"]
        kind = describe_type(inner, info.metadata)
        if kinds:
            tags = " or ".join(f"`{step.value}`" for step in kinds)
            direct = children[0][0][0].kind == "variant"
            decides = f"`{kinds[0].key}` ({tags}) decides the other keys (below)"
            kind = f"object; its {decides}" if direct else f"{kind}; in each, its {decides}"
        yield Entry(
            path=path,
            description=_description(info, inner),
            type=kind + ("; optional" if optional else ""),
            default=_default(info, optional_parent),
            variant=variant,
            container=bool(children),
        )
        below = optional_parent or ("" if info.is_required() else dotted(path))
        for child_path, child_model, child_variant in children:
            yield from entries(child_model, (*path, *child_path), child_variant or variant, below)


def _children(annotation: Any, info: FieldInfo) -> list[tuple[tuple[Step, ...], type[BaseModel], str | None]]:
    """The models below a field: itself a model, a map or list of models, or a discriminated union's variants."""
    return _models_in(annotation, info.discriminator)


def _models_in(
    annotation: Any, discriminator: Any = None
) -> list[tuple[tuple[Step, ...], type[BaseModel], str | None]]:
    base, extra = _split_annotated(annotation)
    discriminator = discriminator or next((c.discriminator for c in extra if isinstance(c, FieldInfo)), None)
    if _is_model(base):
        return [((), base, None)]
    origin, args = get_origin(base), get_args(base)
    if origin is dict or origin is list:
        step = Step("name") if origin is dict else Step("item")
        return [((step, *path), model, variant) for path, model, variant in _models_in(args[-1])]
    variants = [arg for arg in _union_args(base) if _is_model(arg)]
    if variants and discriminator is not None:
        tag = str(discriminator)
        return [((Step("variant", tag, _tag_value(v, tag)),), v, f"{tag}: {_tag_value(v, tag)}") for v in variants]
    if len(variants) == 1:  # a model or a word (registry: none)
        return [((), variants[0], None)]
    return []


def _tag_value(model: type[BaseModel], tag: str) -> str:
    return str(get_args(model.model_fields[tag].annotation)[0])


def _description(info: FieldInfo, annotation: Any) -> str:
    base, _ = _split_annotated(annotation)
    doc = base.__doc__.strip() if _is_model(base) and base.__doc__ else ""
    return " ".join(_sentence(part) for part in (info.description or "", doc) if part)


def _default(info: FieldInfo, optional_parent: str) -> str:
    if info.is_required():
        return f"required when `{optional_parent}` is given" if optional_parent else "required"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "each key below at its default"
        return f"`{flow(value)}` (none)" if value in ({}, []) else f"`{flow(value)}`"
    if info.default is None:
        return "unset"
    return f"`{flow(info.default)}`"


# --- types in words ------------------------------------------------------------------------------------------


def describe_type(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A type and its constraints in words: `integer from 1 to 65535`, `list of hostnames like ...`."""
    base, extra = _split_annotated(annotation)
    constraints = [*metadata, *extra]
    origin, args = get_origin(base), get_args(base)
    if _is_model(base):
        return "object (keys below)"
    if origin is Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in args) if len(args) > 1 else f"`{args[0]}`"
    if origin is list:
        item = describe_type(args[0])
        return _sized("list", constraints) + (" of text" if item == "text" else f"; each item: {_bare(item)}")
    if origin is dict:
        key, value = _bare(describe_type(args[0])), _bare(describe_type(args[1]))
        return _sized("map", constraints) + f"; keys: {key}; values: {value}"
    union = _union_args(base)
    if union:
        if all(_is_model(arg) for arg in union):
            return "object (keys below)"
        return " or ".join(describe_type(arg) for arg in union)
    if base is bool:
        return "`true` or `false`"
    if base is int or base is float:
        return ("integer" if base is int else "number") + _bounds(constraints)
    if base is str:
        return _string(constraints)
    return getattr(base, "__name__", str(base))


def _string(constraints: Sequence[Any]) -> str:
    pattern = next((c.pattern for c in _flat(constraints) if getattr(c, "pattern", None)), None)
    text = "text"
    if pattern is not None:
        help_text = config.PATTERN_HELP.get(pattern)
        text = f"text: {help_text}" if help_text else f"text matching `{pattern}`"
    for item in _flat(constraints):
        if isinstance(item, annotated_types.MinLen) and item.min_length == 1:
            text += ", not empty"
        elif isinstance(item, annotated_types.MinLen):
            text += f", at least {item.min_length} characters"
        elif isinstance(item, annotated_types.MaxLen):
            text += f", up to {item.max_length} characters"
    return text


def _bounds(constraints: Sequence[Any]) -> str:
    words = {
        annotated_types.Ge: ("ge", "at least"),
        annotated_types.Gt: ("gt", "more than"),
        annotated_types.Le: ("le", "at most"),
        annotated_types.Lt: ("lt", "less than"),
    }
    found = {kind: getattr(c, words[kind][0]) for c in _flat(constraints) for kind in words if isinstance(c, kind)}
    if annotated_types.Ge in found and annotated_types.Le in found:
        return f" from {found[annotated_types.Ge]} to {found[annotated_types.Le]}"
    return "".join(f", {words[kind][1]} {value}" for kind, value in found.items())


def _sized(noun: str, constraints: Sequence[Any]) -> str:
    minimum = next((c.min_length for c in _flat(constraints) if isinstance(c, annotated_types.MinLen)), 0)
    unit = "entry" if noun == "map" else "item"
    return f"{noun} (at least {minimum} {unit}{'' if minimum == 1 else 's'})" if minimum else noun


def _bare(description: str) -> str:
    """`text: a path starting with /` as `a path starting with /`, inside a list's or a map's description."""
    return description.removeprefix("text: ")


def _flat(constraints: Sequence[Any]) -> Iterator[Any]:
    """Constraints, with those inside a nested FieldInfo (Annotated[str, Field(pattern=...)]) spliced in."""
    for item in constraints:
        if isinstance(item, FieldInfo):
            yield from item.metadata
        else:
            yield item


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        inner, more = _split_annotated(base)
        return inner, [*more, *extra]
    return annotation, []


def _union_args(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    union = _union_args(annotation)
    if type(None) not in union:
        return annotation, False
    rest = tuple(arg for arg in union if arg is not type(None))
    return (rest[0] if len(rest) == 1 else Union[rest]), True  # noqa: UP007 (a Union built at run time)


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


# --- examples ------------------------------------------------------------------------------------------------


def example_values(path: Sequence[Step], stack: Any) -> Iterator[Any]:
    """The values at `path` in one example stack (a `<name>` step visits every name)."""
    if not path:
        yield stack
        return
    step, rest = path[0], path[1:]
    if step.kind == "field" and isinstance(stack, Mapping) and step.key in stack:
        yield from example_values(rest, stack[step.key])
    elif step.kind == "name" and isinstance(stack, Mapping):
        for value in stack.values():
            yield from example_values(rest, value)
    elif step.kind == "item" and isinstance(stack, list):
        for value in stack:
            yield from example_values(rest, value)
    elif step.kind == "variant" and isinstance(stack, Mapping) and stack.get(step.key) == step.value:
        yield from example_values(rest, stack)


def example_of(path: Sequence[Step], examples: Sequence[Mapping[str, Any]] = EXAMPLES) -> Any | None:
    return next((value for stack in examples for value in example_values(path, stack)), None)


def flow(value: Any) -> str:
    """A value as YAML in one line (`{path: /health}`, `[acme.com]`, `'@hourly'`)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def block(value: Mapping[str, Any], indent: int = 0) -> list[str]:
    """YAML lines: nested maps as blocks, lists and leaves in flow style, as the stack files are written."""
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            lines += [" " * indent + f"{key}:", *block(item, indent + 2)]
        else:
            lines.append(" " * indent + f"{key}: {flow(item)}")
    return lines


# --- markdown ------------------------------------------------------------------------------------------------


def section_names(model: type[BaseModel] = config.StackConfig) -> list[str]:
    return [*model.model_fields, SECRETS_SECTION]


def render(
    model: type[BaseModel] = config.StackConfig,
    examples: Sequence[Mapping[str, Any]] = EXAMPLES,
    sections: Sequence[str] | None = None,
) -> str:
    """The reference as markdown: every section, or just `sections` (top-level keys, or `secrets`)."""
    wanted = list(sections) if sections is not None else section_names(model)
    unknown = [name for name in wanted if name not in section_names(model)]
    if unknown:
        raise ValueError(f"no section {unknown[0]!r}: sections are {', '.join(section_names(model))}")
    grouped = {name: Section(name) for name in model.model_fields}
    for entry in entries(model):
        grouped[entry.path[0].key].entries.append(entry)
    parts = [_preamble(model)] if sections is None else []
    for name in wanted:
        parts.append(_secrets() if name == SECRETS_SECTION else _section(grouped[name], examples))
    return "\n\n".join(parts).rstrip() + "\n"


def _preamble(model: type[BaseModel]) -> str:
    contents = " · ".join(f"[{name}](#{name})" for name in section_names(model))
    return "\n".join(
        [
            "# Configuration reference",
            "",
            "<!-- Generated from components/config.py by `scripts/config-reference --write`: do not edit. -->",
            "",
            "A stack file, `Pulumi.<stack>.yaml`, holds these keys under `config:`, each top-level key with the "
            f"project's namespace in front (`{config.NAMESPACE}:service`, `{config.NAMESPACE}:roles`). Below, keys "
            "are written as dotted paths from there: `roles.<name>.health.path` is the `path` key of the "
            "`health` map of any role. Unknown keys are errors, and every error names its key.",
            "",
            "Secrets are not part of these sections: they are config secrets of their own, see "
            f"[secrets](#{SECRETS_SECTION}).",
            "",
            f"Sections: {contents}",
        ]
    )


def _section(section: Section, examples: Sequence[Mapping[str, Any]]) -> str:
    top = section.entries[0]
    lines = [f"## {section.name}", ""]
    variants = [entry.variant for entry in section.entries if entry.variant is not None]
    if not variants:
        lines += [*_example_block(top.path, examples), "", *_entries(section.entries, examples, "###")]
        return "\n".join(lines).rstrip()
    lines += [*_entry(top, examples, "###"), ""]
    for variant in dict.fromkeys(variants):
        chosen = [entry for entry in section.entries if entry.variant == variant]
        lines += [f"### {section.name} with `{variant}`", ""]
        lines += [*_example_block(chosen[0].path[:-1], examples), "", *_entries(chosen, examples, "####")]
    return "\n".join(lines).rstrip()


def _example_block(path: Sequence[Step], examples: Sequence[Mapping[str, Any]]) -> list[str]:
    value = example_of(path, examples)
    if value is None:
        return []
    key = f"{config.NAMESPACE}:{path[0].key}"
    return ["```yaml", "config:", *block({key: value}, indent=2), "```"]


def _entries(chosen: Sequence[Entry], examples: Sequence[Mapping[str, Any]], heading: str) -> list[str]:
    lines: list[str] = []
    for entry in chosen:
        lines += [*_entry(entry, examples, heading), ""]
    return lines


def _entry(entry: Entry, examples: Sequence[Mapping[str, Any]], heading: str) -> list[str]:
    lines = [f"{heading} `{entry.dotted}`", ""]
    if entry.description:
        lines += [entry.description, ""]
    lines += [f"- Type: {entry.type}", f"- Default: {entry.default}"]
    value = example_of(entry.path, examples)
    if value is not None:
        shown = flow(value)
        if entry.container and len(shown) > INLINE_EXAMPLE_MAX:
            lines.append("- Example: the block at the top of this section")
        else:
            lines.append(f"- Example: `{entry.key}: {shown}`")
    return lines


def _secrets() -> str:
    lines = [
        f"## {SECRETS_SECTION}",
        "",
        "Secrets are config keys of their own, set with `pulumi config set --secret KEY VALUE` (or `< file`): "
        f"Pulumi stores them encrypted in the stack file, under the same `{config.NAMESPACE}:` namespace. "
        "Each is validated before anything is created: a missing one stops the preview with the command that "
        "sets it. They reach the server only on the standard input of a remote command.",
        "",
        "| key | needed | what |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{secret.key}` | {secret.needed} | {secret.what} |" for secret in SECRET_KEYS]
    lines += [
        "",
        "```sh",
        "pulumi config set --secret ssh_private_key < ~/.ssh/deploy_ed25519",
        'pulumi config set --secret registry_password "$REGISTRY_TOKEN"',
        "pulumi config set --secret DATABASE_URL 'postgres://...'",
        "```",
        "",
        "With `server.provider: hetzner`, the Hetzner Cloud provider needs its API token too: "
        "`pulumi config set --secret hcloud:token ...` (its own namespace; or the `HCLOUD_TOKEN` environment "
        "variable).",
    ]
    return "\n".join(lines)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", ")", "`")) else text + "."


def missing_descriptions(model: type[BaseModel] = config.StackConfig) -> list[str]:
    """Dotted paths of fields without a description of their own (a model's docstring does not count)."""
    missing: list[str] = []

    def walk(current: type[BaseModel], prefix: tuple[Step, ...], where: str) -> None:
        for name, info in current.model_fields.items():
            path = (*prefix, Step("field", name))
            if not info.description:
                missing.append(f"{dotted(path)}{where} ({current.__name__}.{name})")
            for child_path, child, variant in _children(_unwrap_optional(info.annotation)[0], info):
                walk(child, (*path, *child_path), f" [{variant}]" if variant else where)

    walk(model, (), "")
    return missing


def missing_examples(model: type[BaseModel] = config.StackConfig) -> list[str]:
    """Dotted paths no example stack sets."""
    return [
        entry.dotted + (f" [{entry.variant}]" if entry.variant else "")
        for entry in entries(model)
        if example_of(entry.path) is None
    ]
