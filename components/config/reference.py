"""The configuration reference (docs/configuration.md), generated from the stack config's JSON schema.

Every key comes from StackConfig.model_json_schema(): its dotted path (`roles.<name>.health.path`), its description
(and its model's docstring), its default, its type and allowed values (patterns in words, from PATTERN_HELP), and
an example value taken from examples.reference(), complete stacks that validate. Nothing here is written by hand
per key, so a field added to a model shows up here; a field without a description or an example fails
tests/unit/test_reference.py.

    render()                     the whole reference (markdown)
    render(sections=["roles"])   one top-level section
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from components.config import examples
from components.config.stack import NAMESPACE, StackConfig
from components.config.types import PATTERN_HELP

# Dict keys and list items in a dotted path.
NAME_PLACEHOLDER: Final = "<name>"
ITEM_PLACEHOLDER: Final = "[]"
SECRETS_SECTION: Final = "secrets"
# A container key's example is shown inline when its flow form is this short; else the section's block shows it.
INLINE_EXAMPLE_MAX: Final = 100

# A node of a JSON schema.
Node = Mapping[str, Any]


@dataclass(frozen=True)
class SecretKey:
    key: str
    needed: str
    what: str


# The config secrets StackConfig.secret_names() asks for (tests/unit/test_reference.py checks they agree).
SECRET_KEYS: Final = (
    SecretKey(
        "ssh_private_key",
        "unless `server.private_key_file` names a key file (with `servers`: each server's `private_key_file`)",
        "the private SSH key the deploy connects to the servers with (OpenSSH format); with `provider: hetzner` its "
        "public half is the server's `ssh_public_key`",
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


# --- the JSON schema ------------------------------------------------------------------------------------------


class _WithFactoryDefaults(GenerateJsonSchema):
    """pydantic's JSON schema, with the defaults a default_factory makes as well (`hosts: []`, `proxy: {...}`)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


@dataclass(frozen=True)
class Schema:
    """A model's JSON schema: its root node, and the models' nodes its `$ref`s name."""

    root: Node
    defs: Mapping[str, Node]

    @classmethod
    def of(cls, model: type[BaseModel]) -> Schema:
        root = model.model_json_schema(schema_generator=_WithFactoryDefaults)
        return cls(root, root.get("$defs", {}))

    def resolve(self, node: Node) -> Node:
        return self.defs[node["$ref"].removeprefix("#/$defs/")] if "$ref" in node else node

    def is_model(self, node: Node) -> bool:
        return "properties" in self.resolve(node)


def _nullable(node: Node) -> tuple[Node, bool]:
    """A key's node without its `null` (`str | None`), and whether it had one."""
    members = node.get("anyOf", [])
    rest = [member for member in members if member != {"type": "null"}]
    if len(rest) == len(members):
        return node, False
    return (rest[0] if len(rest) == 1 else {"anyOf": rest}), True


def _map_key(node: Node) -> Node:
    """The node of a map's keys: the pattern pydantic puts in patternProperties, with the rest in propertyNames."""
    patterns = list(node.get("patternProperties", {}))
    return {"type": "string", **({"pattern": patterns[0]} if patterns else {}), **node.get("propertyNames", {})}


def _map_value(node: Node) -> Node:
    values: list[Node] = [*node.get("patternProperties", {}).values(), node.get("additionalProperties", {})]
    return values[0]


def _is_map(node: Node) -> bool:
    return node.get("type") == "object" and "properties" not in node


# --- walking the schema --------------------------------------------------------------------------------------


def entries(model: type[BaseModel] = StackConfig) -> Iterator[Entry]:
    """Every key of `model` and of the models inside it, depth first, in declaration order."""
    schema = Schema.of(model)
    return _entries(schema, schema.root)


def _entries(
    schema: Schema, model: Node, prefix: tuple[Step, ...] = (), variant: str | None = None, optional_parent: str = ""
) -> Iterator[Entry]:
    required = model.get("required", [])
    for name, node in model["properties"].items():
        path = (*prefix, Step("field", name))
        inner, optional = _nullable(node)
        children = _models_in(schema, inner)
        kinds = [step for child_path, _, _ in children for step in child_path if step.kind == "variant"]
        kind = describe_type(schema, inner)
        if kinds:
            tags = " or ".join(f"`{step.value}`" for step in kinds)
            direct = children[0][0][0].kind == "variant"
            decides = f"`{kinds[0].key}` ({tags}) decides the other keys (below)"
            kind = f"object; its {decides}" if direct else f"{kind}; in each, its {decides}"
        yield Entry(
            path=path,
            description=_description(schema, node, inner),
            type=kind + ("; optional" if optional else ""),
            default=_default(schema, node, inner, name in required, optional_parent),
            variant=variant,
            container=bool(children),
        )
        below = optional_parent if name in required else dotted(path)  # the innermost optional key above
        for child_path, child, child_variant in children:
            yield from _entries(schema, child, (*path, *child_path), child_variant or variant, below)


def _models_in(schema: Schema, node: Node) -> list[tuple[tuple[Step, ...], Node, str | None]]:
    """The models below a key: itself a model, a map or list of models, or a discriminated union's variants."""
    if schema.is_model(node):
        return [((), schema.resolve(node), None)]
    if _is_map(node) or node.get("type") == "array":
        step = Step("name") if _is_map(node) else Step("item")
        inner = _map_value(node) if _is_map(node) else node.get("items", {})
        return [((step, *path), model, variant) for path, model, variant in _models_in(schema, inner)]
    if "discriminator" in node:
        tag = node["discriminator"]["propertyName"]
        return [
            ((Step("variant", tag, value),), schema.resolve({"$ref": ref}), f"{tag}: {value}")
            for value, ref in node["discriminator"]["mapping"].items()
        ]
    models = [member for member in node.get("anyOf", []) if schema.is_model(member)]
    if len(models) == 1:  # a model or a word (registry: none)
        return [((), schema.resolve(models[0]), None)]
    return []


def _description(schema: Schema, node: Node, inner: Node) -> str:
    doc = schema.resolve(inner).get("description", "") if "$ref" in inner else ""
    return " ".join(_sentence(part) for part in (node.get("description", ""), doc) if part)


def _default(schema: Schema, node: Node, inner: Node, required: bool, optional_parent: str) -> str:
    if required:
        return f"required when `{optional_parent}` is given" if optional_parent else "required"
    value = node.get("default")
    if value is None:
        return "unset"
    if schema.is_model(inner):
        return "each key below at its default"
    return f"`{flow(value)}` (none)" if value in ({}, []) else f"`{flow(value)}`"


# --- types in words ------------------------------------------------------------------------------------------


def describe_type(schema: Schema, node: Node) -> str:
    """A type and its constraints in words: `integer from 1 to 65535`, `list of hostnames like ...`."""
    members = node.get("anyOf") or node.get("oneOf")
    kind = node.get("type")
    if schema.is_model(node):
        return "object (keys below)"
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{value}`" for value in node["enum"])
    if members:
        if all(schema.is_model(member) for member in members):
            return "object (keys below)"
        return " or ".join(describe_type(schema, member) for member in members)
    if kind == "array":
        item = describe_type(schema, node.get("items", {}))
        return _sized("list", node.get("minItems", 0)) + (
            " of text" if item == "text" else f"; each item: {_bare(item)}"
        )
    if _is_map(node):
        key, value = (_bare(describe_type(schema, part)) for part in (_map_key(node), _map_value(node)))
        return _sized("map", node.get("minProperties", 0)) + f"; keys: {key}; values: {value}"
    if kind == "boolean":
        return "`true` or `false`"
    if kind in ("integer", "number"):
        return ("integer" if kind == "integer" else "number") + _bounds(node)
    if kind == "string":
        return _string(node)
    raise ValueError(f"no words for the type of {dict(node)}")


def _string(node: Node) -> str:
    pattern = node.get("pattern")
    text = "text"
    if pattern is not None:
        help_text = PATTERN_HELP.get(pattern)
        text = f"text: {help_text}" if help_text else f"text matching `{pattern}`"
    minimum, maximum = node.get("minLength"), node.get("maxLength")
    if minimum == 1:
        text += ", not empty"
    elif minimum is not None:
        text += f", at least {minimum} characters"
    if maximum is not None:
        text += f", up to {maximum} characters"
    return text


def _bounds(node: Node) -> str:
    if "minimum" in node and "maximum" in node:
        return f" from {node['minimum']} to {node['maximum']}"
    words = {
        "minimum": "at least",
        "exclusiveMinimum": "more than",
        "maximum": "at most",
        "exclusiveMaximum": "less than",
    }
    return "".join(f", {words[bound]} {node[bound]}" for bound in words if bound in node)


def _sized(noun: str, minimum: int) -> str:
    unit = "entry" if noun == "map" else "item"
    return f"{noun} (at least {minimum} {unit}{'' if minimum == 1 else 's'})" if minimum else noun


def _bare(description: str) -> str:
    """`text: a path starting with /` as `a path starting with /`, inside a list's or a map's description."""
    return description.removeprefix("text: ")


# --- examples ----------------------------------------------------------------------------------------------


def example_values(path: Sequence[Step], stack: Any) -> Iterator[Any]:
    """The values at `path` in one example stack (a `<name>` step visits every name)."""
    return (value for _, value in _examples(path, stack))


def _examples(path: Sequence[Step], stack: Any, keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The values at `path` in one example stack, each with the keys that lead to it (`servers`, `app-1`)."""
    if not path:
        yield keys, stack
        return
    step, rest = path[0], path[1:]
    if step.kind == "field" and isinstance(stack, Mapping) and step.key in stack:
        yield from _examples(rest, stack[step.key], (*keys, step.key))
    elif step.kind == "name" and isinstance(stack, Mapping):
        for name, value in stack.items():
            yield from _examples(rest, value, (*keys, name))
    elif step.kind == "item" and isinstance(stack, list):
        for value in stack:
            yield from _examples(rest, value, keys)
    elif step.kind == "variant" and isinstance(stack, Mapping) and stack.get(step.key) == step.value:
        yield from _examples(rest, stack, keys)


def example_of(path: Sequence[Step], stacks: Sequence[Mapping[str, Any]]) -> Any | None:
    """The value at `path` in the first example stack that sets it."""
    return next((value for stack in stacks for value in example_values(path, stack)), None)


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


def section_names(model: type[BaseModel] = StackConfig) -> list[str]:
    return [*model.model_fields, SECRETS_SECTION]


def render(
    model: type[BaseModel] = StackConfig,
    stacks: Sequence[Mapping[str, Any]] | None = None,
    sections: Sequence[str] | None = None,
) -> str:
    """The reference as markdown: every section, or just `sections` (top-level keys, or `secrets`); its examples
    from `stacks`, examples.reference() unless given."""
    chosen = examples.reference() if stacks is None else stacks
    wanted = list(sections) if sections is not None else section_names(model)
    unknown = [name for name in wanted if name not in section_names(model)]
    if unknown:
        raise ValueError(f"no section {unknown[0]!r}: sections are {', '.join(section_names(model))}")
    grouped = {name: Section(name) for name in model.model_fields}
    for entry in entries(model):
        grouped[entry.path[0].key].entries.append(entry)
    parts = [_preamble(model)] if sections is None else []
    for name in wanted:
        parts.append(_secrets() if name == SECRETS_SECTION else _section(grouped[name], chosen))
    return "\n\n".join(parts).rstrip() + "\n"


def _preamble(model: type[BaseModel]) -> str:
    contents = " · ".join(f"[{name}](#{name})" for name in section_names(model))
    return "\n".join(
        [
            "# Configuration reference",
            "",
            "<!-- Generated from components/config/ by `scripts/config-reference --write`: do not edit. -->",
            "",
            "A stack file, `Pulumi.<stack>.yaml`, holds these keys under `config:`, each top-level key with the "
            f"project's namespace in front (`{NAMESPACE}:service`, `{NAMESPACE}:roles`). Below, keys "
            "are written as dotted paths from there: `roles.<name>.health.path` is the `path` key of the "
            "`health` map of any role. Unknown keys are errors, and every error names its key.",
            "",
            "Secrets are not part of these sections: they are config secrets of their own, see "
            f"[secrets](#{SECRETS_SECTION}).",
            "",
            f"Sections: {contents}",
        ]
    )


def _section(section: Section, stacks: Sequence[Mapping[str, Any]]) -> str:
    top = section.entries[0]
    lines = [f"## {section.name}", ""]
    variants = [entry.variant for entry in section.entries if entry.variant is not None]
    if not variants:
        lines += [*_example_block(top.path, stacks), "", *_entry_lines(section.entries, stacks, "###")]
        return "\n".join(lines).rstrip()
    # A map of variants (servers) shows a whole map first; the variants' blocks show one value each.
    if any(step.kind == "name" for step in section.entries[1].path):
        lines += [*_example_block(top.path, stacks), ""]
    lines += [*_entry(top, stacks, "###"), ""]
    for variant in dict.fromkeys(variants):
        chosen = [entry for entry in section.entries if entry.variant == variant]
        lines += [f"### {section.name} with `{variant}`", ""]
        lines += [*_example_block(chosen[0].path[:-1], stacks), "", *_entry_lines(chosen, stacks, "####")]
    return "\n".join(lines).rstrip()


def _example_block(path: Sequence[Step], stacks: Sequence[Mapping[str, Any]]) -> list[str]:
    found = next((example for stack in stacks for example in _examples(path, stack)), None)
    if found is None:
        return []
    (top, *names), value = found
    for name in reversed(names):  # a value below a map's name (servers.app-1) shows under that name
        value = {name: value}
    return ["```yaml", "config:", *block({f"{NAMESPACE}:{top}": value}, indent=2), "```"]


def _entry_lines(chosen: Sequence[Entry], stacks: Sequence[Mapping[str, Any]], heading: str) -> list[str]:
    lines: list[str] = []
    for entry in chosen:
        lines += [*_entry(entry, stacks, heading), ""]
    return lines


def _entry(entry: Entry, stacks: Sequence[Mapping[str, Any]], heading: str) -> list[str]:
    lines = [f"{heading} `{entry.dotted}`", ""]
    if entry.description:
        lines += [entry.description, ""]
    lines += [f"- Type: {entry.type}", f"- Default: {entry.default}"]
    value = example_of(entry.path, stacks)
    if isinstance(value, str) and "\n" in value:
        # Text of several lines (a public key) as YAML's literal block, as `pulumi config set < FILE` stores it.
        lines += [
            "- Example:",
            "",
            "```yaml",
            f"{entry.key}: |",
            *(f"  {line}".rstrip() for line in value.splitlines()),
            "```",
        ]
    elif value is not None:
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
        "Secrets are config keys of their own, set with `pulumi config set --secret KEY`, the value from its prompt "
        'or from stdin (`< file`, or `printf %s "$VALUE" |`), never on the command line, where `ps` and the '
        f"shell's history see it: Pulumi stores them encrypted in the stack file, under the same `{NAMESPACE}:` "
        "namespace. A secret set without `--secret` is in plain text there, and is refused. "
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
        "pulumi config set --secret registry_password     # prompts for it, and does not show it",
        'printf %s "$DATABASE_URL" | pulumi config set --secret DATABASE_URL',
        "```",
        "",
        "With `provider: hetzner` servers, the Hetzner Cloud provider needs its API token too: "
        "`pulumi config set --secret hcloud:token` (its own namespace; or the `HCLOUD_TOKEN` environment "
        "variable).",
    ]
    return "\n".join(lines)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", ")", "`")) else text + "."


def missing_descriptions(model: type[BaseModel] = StackConfig) -> list[str]:
    """Dotted paths of fields without a description of their own (a model's docstring does not count)."""
    schema = Schema.of(model)
    missing: list[str] = []

    def walk(current: Node, prefix: tuple[Step, ...], where: str) -> None:
        for name, node in current["properties"].items():
            path = (*prefix, Step("field", name))
            if not node.get("description"):
                missing.append(f"{dotted(path)}{where} ({current.get('title')}.{name})")
            for child_path, child, variant in _models_in(schema, _nullable(node)[0]):
                walk(child, (*path, *child_path), f" [{variant}]" if variant else where)

    walk(schema.root, (), "")
    return missing


def missing_examples(model: type[BaseModel] = StackConfig) -> list[str]:
    """Dotted paths no example stack sets."""
    stacks = examples.reference()
    return [
        entry.dotted + (f" [{entry.variant}]" if entry.variant else "")
        for entry in entries(model)
        if example_of(entry.path, stacks) is None
    ]
