"""The readable preview: reads `pulumi preview --json` of quayside's program and says, for the server, its host,
the proxy, each accessory and each role, what `pulumi up` would do there, in plain words. `quayside plan` runs the
preview and prints these words; a preview's JSON from elsewhere is read from a file or stdin:

    pulumi preview --json --diff -s prod | .venv/bin/python -m quayside_cli.plan
    .venv/bin/python -m quayside_cli.plan preview.json

Lines starting with `WARNING:` come first: they lose data, replace the server, or say what a server ignores. Secret
values never reach the output: the preview shows them as [secret], and only names, images, versions and public
options are printed (an env variable by its name only). Exits 1 when the preview failed (its errors printed), else 0.
"""

from __future__ import annotations

import itertools
import json
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components import steps
from components.image_ref import Reference, short_digest, unpinned

# How a preview shows a value that is known only once `up` has run (a build's digest, a new server's address).
UNKNOWN: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
QUIET_OPS: Final = frozenset({"same", "read", "refresh", "discard", "remove-pending-replace"})
REPLACE_OPS: Final = frozenset({"replace", "create-replacement", "delete-replaced"})
PARTS: Final = {
    "quayside:index:ExistingServer": "server",
    "quayside:index:HetznerServer": "server",
    "quayside:index:ServerBootstrap": "bootstrap",
    "quayside:index:DockerHost": "host",
    "quayside:index:Proxy": "proxy",
    "quayside:index:AppRole": "role",
    "quayside:index:ImageTransfer": "image",
    "quayside:accessories:Postgres": "accessory",
    "quayside:accessories:Backup": "accessory",
    "quayside:accessories:Vector": "accessory",
    "quayside:index:PrivateNetwork": "network",
}
ORDER: Final = ("server", "network", "bootstrap", "host", "proxy", "accessory", "image", "role", "other")
# The parts of a stack with `servers:` that each server has one of, `{service}-{kind}-{server}`.
SERVER_KINDS: Final = ("server", "bootstrap", "host", "proxy")
RECONNECTED: Final = "the server connection changed"
HCLOUD_SERVER: Final = "hcloud:index/server:Server"
HCLOUD_VOLUME: Final = "hcloud:index/volume:Volume"
HCLOUD_PRIMARY_IP: Final = "hcloud:index/primaryIp:PrimaryIp"
HCLOUD_NETWORK: Final = "hcloud:index/network:Network"
HCLOUD_SUBNET: Final = "hcloud:index/networkSubnet:NetworkSubnet"
HCLOUD_SERVER_NETWORK: Final = "hcloud:index/serverNetwork:ServerNetwork"
# Whatever parent they have, these belong to the private network's part.
NETWORK_TYPES: Final = frozenset({HCLOUD_NETWORK, HCLOUD_SUBNET, HCLOUD_SERVER_NETWORK})
# The all-or-none rollout of a role on several servers (components/rollout.py, run on the deploying machine).
ROLLOUT_SCRIPT: Final = "rollout.py"
# How quayside's program starts a warning it logs (components/server.py WARNING_PREFIX), as the preview shows it.
PROGRAM_WARNING: Final = "warning: quayside: "
HCLOUD_WORDS: Final = {"serverType": "type", "location": "location", "image": "image", "sshKeys": "SSH keys",
                       "name": "name", "datacenter": "datacenter", "ipRange": "IP range", "networkZone": "zone",
                       "ip": "address"}  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One resource's step in the preview: what it is, and its inputs before and after."""

    op: str
    urn: str
    old: Mapping[str, Any]
    new: Mapping[str, Any]
    changed: tuple[str, ...]  # the inputs whose change the provider reports (top-level names)
    replaced_by: tuple[str, ...]

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> Step:
        detailed = raw.get("detailedDiff") or {}
        keys = [*detailed, *(raw.get("diffReasons") or [])]
        top = dict.fromkeys(key.split(".")[0].split("[")[0] for key in keys)
        return cls(
            op=str(raw["op"]),
            urn=str(raw["urn"]),
            old=raw.get("oldState") or {},
            new=raw.get("newState") or {},
            changed=tuple(top),
            replaced_by=tuple(raw.get("replaceReasons") or ()),
        )

    @property
    def type(self) -> str:
        return self.urn.split("::")[-2].rsplit("$", 1)[-1]

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]

    @property
    def parent(self) -> str:
        return str(self.new.get("parent") or self.old.get("parent") or "")

    def before(self, key: str) -> Any:
        return (self.old.get("inputs") or {}).get(key)

    def after(self, key: str) -> Any:
        return (self.new.get("inputs") or {}).get(key)


@dataclass
class Part:
    """A component of quayside's program (a role, an accessory, the proxy...) and the steps of its resources."""

    kind: str
    label: str
    own: Step | None = None  # the component's own step (created or deleted with its part)
    steps: list[Step] = field(default_factory=list)
    name: str = ""  # the component's resource name (`{service}-web`)
    server: str | None = None  # the server of a per-server part in a stack with `servers:`

    def child(self, suffix: str) -> Step | None:
        return next((step for step in self.steps if step.name.endswith(f"-{suffix}")), None)

    def own_child(self, suffix: str) -> Step | None:
        """The child named exactly `{component}-{suffix}` (a server's name cannot pass for it)."""
        return next((step for step in self.steps if step.name == f"{self.name}-{suffix}"), None)

    def of_type(self, type_: str) -> Step | None:
        return next((step for step in self.steps if step.type == type_), None)

    @property
    def created(self) -> bool:
        return self.own is not None and self.own.op == "create"

    @property
    def deleted(self) -> bool:
        return self.own is not None and self.own.op == "delete"


def options(command: object) -> dict[str, list[str]] | None:
    """The options of a remote script's command line by flag (a switch as [""], the action and a command after `--`
    under ""), read as the script's declaration says (components/steps.py); None when it is not known yet."""
    if not isinstance(command, str) or UNKNOWN in command:
        return None
    located = steps.script_of(shlex.split(command))
    if located is None:
        return {}
    return read_options(*located)


def read_options(script: steps.Script, words: list[str]) -> dict[str, list[str]]:
    """A script's arguments by flag, as `options` gives them."""
    rest = list(words)
    found: dict[str, list[str]] = {}
    while rest:
        word = rest.pop(0)
        if not word.startswith("--") or word == "--":
            found.setdefault("", []).append(word)
            continue
        option = declared(script, word)
        # A flag an older quayside sent and this one no longer declares took a value.
        takes_value = option is None or option.takes_value
        found.setdefault(word[2:], []).append(rest.pop(0) if takes_value and rest else "")
    return found


def swap_options(command: object) -> dict[str, list[str]] | None:
    """The options of a swap.sh command line; None for any other command, or one not known yet."""
    if not isinstance(command, str) or UNKNOWN in command:
        return None
    located = steps.script_of(shlex.split(command))
    return read_options(*located) if located is not None and located[0] is steps.SWAP else None


def declared(script: steps.Script, flag: str) -> steps.Option | None:
    try:
        return script.option(flag)
    except ValueError:
        return None


def pairs(values: Iterable[str]) -> dict[str, str]:
    """NAME=value words by name."""
    found: dict[str, str] = {}
    for value in values:
        name, _, text = value.partition("=")
        found[name] = text
    return found


def settings(cmd: list[str]) -> dict[str, str]:
    """`-c name=value` pairs of a Postgres command line."""
    return pairs(value for flag, value in itertools.pairwise(cmd) if flag == "-c")


def names_changed(before: dict[str, str], after: dict[str, str]) -> str:
    return ", ".join(sorted(name for name in {*before, *after} if before.get(name) != after.get(name)))


def option_changes(
    old: dict[str, list[str]] | None, new: dict[str, list[str]] | None, script: steps.Script | None
) -> list[str]:
    """Each changed option of a script in the words its declaration gives: env variables and settings by name only;
    options that name or tune the step are no change."""
    if old is None or new is None or script is None:
        return []
    words: list[str] = []
    for flag in dict.fromkeys([*new, *old]):
        was, now = old.get(flag, []), new.get(flag, [])
        option = declared(script, f"--{flag}") if flag else None
        if not flag or (option is not None and (option.names_step or option.tunes_step)) or was == now:
            continue
        said = option.said if option is not None else flag.replace("-", " ")
        if option is not None and option.kind is steps.Kind.TOGGLE:
            words.append(f"now {said}" if option.flag in new else f"no longer {said}")
        elif flag == "heal" and now:
            words.append(f"{HEAL} {now[0]}")
        elif flag == "env":
            words.append(f"env changed ({names_changed(pairs(was), pairs(now))})")
        elif flag == "cmd" and names_changed(settings(was), settings(now)):
            words.append(f"settings changed ({names_changed(settings(was), settings(now))})")
        elif flag == "image" and len(was) == 1 and len(now) == 1:
            words.append(f"{said} {image_change(was[0], now[0])}")
        elif option is not None and option.kind is steps.Kind.SWITCH:
            words.append(f"{said} {'on' if now else 'off'}")
        elif len(was) == 1 and len(now) == 1 and flag not in ("cmd", "file"):
            words.append(f"{said} {was[0]} → {now[0]}")
        else:
            words.append(f"{said} changed")
    return list(dict.fromkeys(words))


def short_image(ref: str) -> str:
    """An image reference with its digest cut to 12 hex digits."""
    digest = Reference.parse(ref).digest
    return unpinned(ref) + (f"@{short_digest(digest)}" if digest else "")


# How image_change says that an image now runs pinned to a digest its tag names (image_pin): nothing else changed.
PINNED: Final = "pinned to the digest"


def image_change(was: str, now: str) -> str:
    """What changed of an image: its name or tag, or only the content its tag names."""
    before, after = Reference.parse(was).digest, Reference.parse(now).digest
    if unpinned(was) != unpinned(now) or after is None:
        return f"{short_image(was)} → {short_image(now)}"
    if before is None:
        return f"{unpinned(now)} {PINNED} {short_digest(after)} its tag names"
    return f"{unpinned(now)} pushed again: {short_digest(before)} → {short_digest(after)}"


def pinned_only(changes: list[str]) -> bool:
    """An accessory's or the proxy's only change is its image pinned to a digest: what runs restarts only if its
    content is other than the digest names."""
    return len(changes) == 1 and f" {PINNED} " in changes[0]


def secret_changes(step: Step, secrets: str) -> list[str]:
    """What changed beyond the command line: the secrets on its stdin, the connection to the server."""
    return [
        *([f"{secrets} changed"] if "stdin" in step.changed else []),
        *([RECONNECTED] if "connection" in step.changed else []),
    ]


def reconnected(label: str) -> str:
    """A step whose only change is how the server is reached (its address, port, user or key)."""
    return f"{label}: {RECONNECTED}: its step runs again through it (a no-op on the same server, a boot on another)"


def version_of(command: dict[str, list[str]] | None) -> str:
    version = (command or {}).get("version", [""])[0]
    return version if version and UNKNOWN not in version else "a new build"


# How option_changes says a new count of heals (components/drift.py): the program found drift.
HEAL: Final = "drift heal"


def started_again(changes: list[str]) -> bool:
    """A proxy's or accessory's step that runs again only to heal drift: it starts what runs with the same options."""
    return len(changes) == 1 and changes[0].startswith(f"{HEAL} ")


def healed(label: str, also: list[str], version: str, where: str = "") -> list[str]:
    """The words for a swap or rollout that runs again only to heal drift; none for any other change."""
    if not started_again(also):
        return []
    return [f"{label}: found not serving {version}{where} ({also[0]}): {version} goes live again there, its kept "
            "container started or a fresh one booted, after its health check"]  # fmt: skip


def describe_role(part: Part) -> list[str]:
    if part.own_child("rollout") is not None or placements(part):
        return describe_spread_role(part)
    swap, migrate = part.child("swap"), part.child("migrate")
    label = part.label
    if part.deleted or (swap is not None and swap.op == "delete"):
        proxied = swap is None or "proxy" in (options(swap.before("create")) or {})
        return [f"{label}: removed: its {'route and ' if proxied else ''}containers go"]
    if swap is None:
        if migrate is not None:
            return [f"{label}: its migration step changed ({', '.join(migrate.changed)}): no container restarts"]
        return [f"{label}: {step.name} {step.op}" for step in part.steps]
    old, new = options(swap.before("create")), options(swap.after("create"))
    proxied = "proxy" in (new or {})
    switch = "switches after its health check" if proxied else "takes over once it runs (or is healthy)"
    first = "runs its migration, then " if migrate is not None and migrate.op != "delete" else ""
    version = version_of(new)
    if part.created or swap.op == "create":
        takes = "takes traffic after its health check" if proxied else "runs"
        return [f"{label}: new role at {version}: {first}boots and {takes}"]
    also = option_changes(old, new, steps.SWAP) + secret_changes(swap, "secret env")
    was = version_of(old)
    # A new version updates the swap in place; an older quayside's stack replaced it.
    if swap.op in REPLACE_OPS or was != version:
        # The image's tag is the version named already.
        changes = "".join(f", {change}" for change in also if not change.startswith("image "))
        return [f"{label}: new version {version} (was {was}){changes}: {first}boots beside {was}, {switch}, "
                f"keeps {was} for rollback"]  # fmt: skip
    if also == [RECONNECTED]:
        return [reconnected(label)]
    if healed(label, also, version):
        return healed(label, also, version)
    if also:
        return [f"{label}: {', '.join(also)}: a fresh container of {version} boots beside the live one and {switch}"]
    return [f"{label}: {', '.join(swap.changed) or 'its steps'} changed: nothing restarts"]


@dataclass(frozen=True)
class Rollout:
    """A rollout's command line (`python3 components/rollout.py ... --server NAME=USER@HOST:PORT ... -- SWAP_ARGV`):
    its servers in order, each with where it is reached, how many swap at once, and swap.sh's options."""

    servers: dict[str, str]
    limit: int
    swap: dict[str, list[str]]

    @classmethod
    def read(cls, command: object) -> Rollout | None:
        """None when the command is not a rollout's, or is not known yet."""
        if not isinstance(command, str) or UNKNOWN in command:
            return None
        words = shlex.split(command)
        at = next((i for i, word in enumerate(words) if word.rsplit("/", 1)[-1] == ROLLOUT_SCRIPT), None)
        if at is None:
            return None
        rest = words[at + 1 :]
        head, swap = (rest[: rest.index("--")], rest[rest.index("--") + 1 :]) if "--" in rest else (rest, [])
        servers: dict[str, str] = {}
        limit = 0
        while head:
            word = head.pop(0)
            if word == "--retained-only" or not head:
                continue
            value = head.pop(0)
            if word == "--server":
                name, _, where = value.partition("=")
                servers[name] = where
            elif word == "--limit" and value.isdigit():
                limit = int(value)
        return cls(servers, limit, read_options(steps.SWAP, swap))

    @property
    def pace(self) -> str:
        """How the servers take turns: nothing for one, else `, N at a time` or `, all at once`."""
        count = len(self.servers)
        if count <= 1:
            return ""
        return f", {self.limit} at a time" if 0 < self.limit < count else ", all at once"


def placements(part: Part) -> dict[str, Step]:
    """A role's placements on servers (`{service}-{role}-on-{server}`) by server."""
    prefix = f"{part.name}-on-"
    return {step.name.removeprefix(prefix): step for step in part.steps if step.name.startswith(prefix)}


def retires_route(step: Step) -> bool:
    """Whether a placement's delete (retire.sh on its server) takes a route of the proxy too."""
    return "proxy" in (options(step.before("delete") or step.after("delete")) or {})


def describe_spread_role(part: Part) -> list[str]:
    """A role of a stack with `servers:`: its placements on servers and its one rollout over them (all or none)."""
    label, rollout, migrate = part.label, part.own_child("rollout"), part.own_child("migrate")
    placed = placements(part)
    added = [server for server, step in placed.items() if step.op == "create"]
    left = {server: step for server, step in placed.items() if step.op == "delete"}
    if part.deleted or (rollout is not None and rollout.op == "delete"):
        proxied = not left or any(retires_route(step) for step in left.values())
        where = f" from {', '.join(left)}" if left else ""
        return [f"{label}: removed{where}: its {'route and ' if proxied else ''}containers go"]
    leaving = [
        f"{label}: leaves {server} (its containers {'and route ' if retires_route(step) else ''}there go)"
        for server, step in left.items()
    ]
    new = Rollout.read(rollout.after("create")) if rollout is not None else None
    old = Rollout.read(rollout.before("create")) if rollout is not None else None
    if old is None:
        # The first run of the rollout of a role that had one swap (`server:`): that swap is now its placement.
        old = next(
            (Rollout({server: new.servers.get(server, "") if new else ""}, 1, found) for server, step in placed.items()
             if (found := swap_options(step.before("create"))) is not None),
            None,
        )  # fmt: skip
    retiring = [options(step.after("delete")) for step in placed.values() if step.op != "delete"]
    known = new.swap if new is not None else next((found for found in retiring if found), None)
    proxied = "proxy" in (known or {})
    switch = "switches after its health check" if proxied else "takes over once it runs (or is healthy)"
    takes = "takes traffic after its health check" if proxied else "runs"
    first = "runs its migration once, then " if migrate is not None and migrate.op != "delete" else ""
    version = version_of(known)
    servers = list(new.servers) if new is not None else [name for name in placed if name not in left]
    where = f" on {', '.join(servers)}{new.pace if new is not None else ''}" if servers else ""
    if part.created or (rollout is not None and rollout.op == "create" and old is None):
        return [f"{label}: new role at {version}{where}: {first}boots and {takes}"]
    said = describe_rollout(label, rollout, old, new, where, first, switch)
    if not said and added and rollout is not None:
        return [f"{label}: placed on {server}: {version} boots there and {takes}" for server in added] + leaving
    return [f"{label}: placed on {server}" for server in added] + said + leaving


def describe_rollout(
    label: str, rollout: Step | None, old: Rollout | None, new: Rollout | None, where: str, first: str, switch: str
) -> list[str]:
    """What the rollout does beyond booting the role where it is newly placed (the placements tell that)."""
    if rollout is None or new is None:
        return []
    was_swap = old.swap if old is not None else None
    also = option_changes(was_swap, new.swap, steps.SWAP)
    moved = old is not None and any(old.servers.get(name, at) != at for name, at in new.servers.items())
    placed_anew = old is not None and set(old.servers) != set(new.servers)
    # Its stdin holds each server's keys as well as the env: a server that comes, goes or moves changes it too.
    secrets = "secret env or SSH keys changed"
    also += [secrets] if "stdin" in rollout.changed and not (moved or placed_anew) else []
    version, was = version_of(new.swap), version_of(was_swap)
    if rollout.op in REPLACE_OPS or (old is not None and was != version):
        changes = "".join(f", {change}" for change in also if not change.startswith("image "))
        return [f"{label}: new version {version} (was {was}){where}{changes}: {first}boots beside {was}, {switch}, "
                f"keeps {was} for rollback"]  # fmt: skip
    if healed(label, also, version, where):
        return healed(label, also, version, where)
    if also == [secrets]:
        return [f"{label}: {secrets}: where the env changed, a fresh container of {version} boots beside the live one "
                f"and {switch}"]  # fmt: skip
    if also:
        return [f"{label}: {', '.join(also)}{where}: a fresh container of {version} boots beside the live one and "
                f"{switch}"]  # fmt: skip
    if old is None:
        return [f"{label}: its rollout runs again{where}: nothing restarts"]
    if moved:
        return [reconnected(label)]
    if placed_anew:
        return []  # the placements tell
    if rollout.op == "create":
        return [f"{label}: its swap becomes a rollout{where}, all or none: {version} stays live, nothing restarts"]
    if new.pace != old.pace:
        return [f"{label}: now{new.pace.removeprefix(',')} (was{old.pace.removeprefix(',') or ' one server'}): "
                "nothing restarts"]  # fmt: skip
    return [f"{label}: its rollout changed ({', '.join(rollout.changed) or 'its steps'}): nothing restarts"]


def describe_image(part: Part) -> list[str]:
    """registry: none: the role's image sent over SSH (components/send_image.py's `--option value` pairs)."""
    send = part.child("send")
    if send is None or part.deleted or send.op == "delete":
        return []
    role = part.label.removesuffix("-image")
    command, triggers = send.after("create"), send.after("triggers") or [""]
    sent = dict(itertools.pairwise(shlex.split(command))) if isinstance(command, str) and UNKNOWN not in command else {}
    what = f"{sent.get('--image', 'its image')} ({short_digest(str(triggers[0]))})"
    if send.op == "update":
        return [f"{role}: its image step runs again ({', '.join(send.changed)}): it sends nothing the server has"]
    return [f"{role}: image {what} goes to the server over SSH, only the layers it lacks"]


def data_dir(command: dict[str, list[str]] | None, name: str) -> str:
    service = (command or {}).get("service", ["<service>"])[0]
    return f"/var/lib/quayside/{service}/{name}/data"


def describe_accessory(part: Part) -> list[str]:
    container, image = part.child("container"), part.child("image")
    label = part.label
    if part.deleted or (container is not None and container.op == "delete"):
        removal = options(container.before("delete")) if container else None
        keeps_data = "data" in (options(container.before("create")) or {}) if container else False
        if removal is not None and "delete-data" in removal:
            return [f"WARNING: {label}: removed WITH ITS DATA (delete_data: true): {data_dir(removal, label)} "
                    "is deleted for good"]  # fmt: skip
        if keeps_data:
            return [f"{label}: removed: its container stops and goes; its data stays in {data_dir(removal, label)}"]
        return [f"{label}: removed: its container goes"]
    new = options(container.after("create")) if container else None
    keeps = " with its data kept" if "data" in (new or {}) else ""
    if part.created or (container is not None and container.op == "create"):
        where = f", its data in {data_dir(new, label)}" if keeps else ""
        on = f" on {part.server}" if part.server else ""
        return [f"{label}: new accessory{on}: boots {short_image((new or {}).get('image', ['its image'])[0])}{where}"]
    lines: list[str] = []
    if image is not None:
        lines.append(f"{label}: its image is built again")
    if container is not None:
        changes = option_changes(options(container.before("create")), new, steps.ACCESSORY)
        changes += secret_changes(container, "secrets")
        arming = option_changes(
            options(container.before("delete")), options(container.after("delete")), steps.ACCESSORY
        )
        if changes == [RECONNECTED]:
            lines.append(reconnected(label))
        elif started_again(changes):
            lines.append(f"{label}: found not running ({changes[0]}): started again{keeps}")
        elif pinned_only(changes):
            lines.append(f"{label}: {changes[0]}: restarted{keeps} only if it runs other content")
        elif changes:
            lines.append(f"{label}: {', '.join(changes)}: restarted{keeps}")
        elif "delete data on" in arming:
            lines.append(f"{label}: delete_data on: removing it later deletes its data")
        elif "delete data off" in arming:
            lines.append(f"{label}: delete_data off: its data stays when it is removed")
    return lines


def describe_proxy(part: Part) -> list[str]:
    container = part.child("container")
    if part.deleted or (container is not None and container.op == "delete"):
        return [f"{part.label}: the service leaves kamal-proxy (removed once no service on the server uses it)"]
    if container is None:
        return []
    new = options(container.after("create")) or {}
    image = new.get("image", ["kamal-proxy"])[0]
    if part.created or container.op == "create":
        version = Reference.parse(image).tag or image
        return [f"{part.label}: kamal-proxy {version} routes the service (booted unless it already runs)"]
    changes = option_changes(options(container.before("create")), new, steps.PROXY)
    changes += secret_changes(container, "secrets")
    if changes == [RECONNECTED]:
        return [reconnected(part.label)]
    if pinned_only(changes):
        return [f"{part.label}: {changes[0]}: kamal-proxy reboots only if it runs other content"]
    if started_again(changes):
        return [f"{part.label}: kamal-proxy found not running on the service's network ({changes[0]}): started again "
                "and joined to it, routes kept"]  # fmt: skip
    return [f"{part.label}: {', '.join(changes)}: kamal-proxy reboots, a brief pause for every service on the server; "
            "routes are kept"]  # fmt: skip


def describe_bootstrap(part: Part) -> list[str]:
    """Root's steps (bootstrap.sh): each changes only what is not yet as it would make it."""
    if part.deleted:
        return [f"{part.label}: leaves the stack; the server keeps its deploy user, swap file and Docker"]
    run = part.child("run")
    if part.created or (run is not None and run.op == "create"):
        user = ((options(run.after("create")) if run is not None else None) or {}).get("deploy-user", ["?"])[0]
        return [f"{part.label}: as root, what is missing: swap file, Docker, unattended upgrades, deploy user {user}, "
                "password SSH off"]  # fmt: skip
    if run is not None and "create" in run.changed:
        return [f"{part.label}: its settings changed: runs again as root, changing only what differs"]
    if any("connection" in step.changed for step in part.steps):
        return [reconnected(part.label)]
    return []


def describe_host(part: Part) -> list[str]:
    if part.deleted:
        return [f"{part.label}: the service's network and env files go (accessory data and the audit log stay)"]
    docker = part.child("docker")
    if part.created or (docker is not None and docker.op == "create"):
        return [f"{part.label}: prepared: scripts shipped, Docker checked, the service network made"]
    scripts, login = part.child("scripts"), part.child("registry-login")
    reasons = [
        *(["the scripts it runs changed"] if scripts is not None and "stdin" in scripts.changed else []),
        *(["its set-up changed"] if docker is not None and "create" in docker.changed else []),
    ]
    lines = [f"{part.label}: {', '.join(reasons)}: prepared again"] if reasons else []
    if not reasons and any("connection" in step.changed for step in part.steps):
        lines.append(reconnected(part.label))
    if login is not None:
        lines.append(f"{part.label}: registry login {'removed' if login.op == 'delete' else 'runs again'}")
    return lines


def describe_network(part: Part, service: str) -> list[str]:
    """The service's private network: Hetzner's network, subnet and each server's attachment; with existing servers,
    the private addresses the stack gives them."""
    network, subnet = part.of_type(HCLOUD_NETWORK), part.of_type(HCLOUD_SUBNET)
    lines: list[str] = []
    if network is not None and network.op == "create":
        within = f", subnet {subnet.after('ipRange')} in {subnet.after('networkZone')}" if subnet is not None else ""
        lines.append(f"network: a new private network {network.after('ipRange')}{within}: the servers reach each other "
                     "there")  # fmt: skip
    elif network is not None and network.op == "delete":
        lines.append("network: the private network goes")
    for step in (network, subnet):
        if step is not None and step.op not in ("create", "delete"):
            how = "replaced" if step.op in REPLACE_OPS else "changed"
            lines.append(f"network: its {step.type.rsplit(':', 1)[-1]} is {how} ({hcloud_changes(step)})")
    for step in part.steps:
        if step.type != HCLOUD_SERVER_NETWORK:
            continue
        server = step.name.removeprefix(f"{service}-server-").removesuffix("-network")
        address = step.after("ip")
        at = f" at {address}" if isinstance(address, str) and address and UNKNOWN not in address else ""
        if step.op == "create":
            lines.append(f"network: {server} joins it{at}")
        elif step.op == "delete":
            lines.append(f"network: {server} leaves it")
        else:
            lines.append(f"network: {server}'s attachment changes ({hcloud_changes(step)})")
    if not lines and part.created:
        lines.append("network: the servers reach each other at their private_ip addresses")
    return lines


def hcloud_changes(step: Step) -> str:
    words = []
    for key in step.replaced_by or step.changed:
        was, now = step.before(key), step.after(key)
        name = HCLOUD_WORDS.get(key, key)
        simple = isinstance(was, str | int) and isinstance(now, str | int) and UNKNOWN not in f"{was}{now}"
        words.append(f"{name} {was} → {now}" if simple else f"{name} changed")
    return ", ".join(words)


def describe_server(part: Part, moved: tuple[str, str] | None, existing: str | None = None) -> list[str]:
    lines: list[str] = []
    label = part.label
    if moved is not None:
        lines.append(f"WARNING: {label}: moves to {moved[1]} (was {moved[0]}): everything is deployed there afresh, "
                     f"accessories start empty; the old server keeps its containers and data")  # fmt: skip
    machine = part.of_type(HCLOUD_SERVER)
    if machine is not None:
        protected = machine.before("deleteProtection") is True
        refusal = "; Hetzner refuses while delete_protection is on: turn it off first if you mean it"
        refusal = refusal if protected else ""
        has_ip, has_volume = primary_ipv4(machine), part.of_type(HCLOUD_VOLUME) is not None
        if machine.op in REPLACE_OPS and (has_ip or has_volume):
            # Replaced delete-first (components/server.py), and what outlives the server goes to the new one.
            data = " but its volume (the service's data), which the new server gets" if has_volume else ""
            if has_volume and "location" in machine.changed:
                data = ", accessory data included: its volume cannot follow it to another location"
            data = data or ", accessory data included"
            address = "; the new server keeps the primary IPv4" if has_ip else ""
            lines.append(f"WARNING: {label}: REPLACED ({hcloud_changes(machine)}): the old server is deleted first, "
                         f"with everything on it{data}{address}{refusal}")  # fmt: skip
        elif machine.op in REPLACE_OPS:
            lines.append(f"WARNING: {label}: REPLACED ({hcloud_changes(machine)}): a new server is made and the old "
                         f"one is deleted with everything on it, accessory data included{refusal}")  # fmt: skip
        elif machine.op == "delete":
            lines.append(f"WARNING: {label}: DELETED with everything on it, accessory data included{refusal}")
        elif machine.op == "create":
            extras = [
                *(["a primary IPv4 of its own"] if part.of_type(HCLOUD_PRIMARY_IP) is not None else []),
                *([f"a {volume_size(part)} GB volume for its data"] if part.of_type(HCLOUD_VOLUME) is not None else []),
            ]
            lines.append(f"{label}: a new Hetzner server ({machine.after('serverType')} in {machine.after('location')})"
                         f"{', with ' + ' and '.join(extras) if extras else ''}")  # fmt: skip
        elif machine.op == "update" and "publicNets" in machine.changed:
            now = (
                "gets a primary IPv4 of its own" if has_ip else "gives up its primary IPv4 for an address of Hetzner's"
            )
            lines.append(f"WARNING: {label}: {now}: its address changes, point DNS at the new one; Hetzner assigns a "
                         "primary IP only to a server that is off")  # fmt: skip
        elif "serverType" in machine.changed:
            lines.append(f"{label}: {hcloud_changes(machine)}: Hetzner resizes it in place (it is off meanwhile)")
        elif machine.op == "update":
            lines.append(f"{label}: {hcloud_changes(machine)}: changed in place")
    volume = part.of_type(HCLOUD_VOLUME)
    if volume is not None and volume.op == "create" and (machine is None or machine.op != "create"):
        lines.append(f"{label}: a new {volume_size(part)} GB volume, mounted where the service keeps its data (the "
                     "mount refuses when files are there already)")  # fmt: skip
    elif volume is not None and volume.op == "update" and "size" in volume.changed:
        lines.append(f"{label}: the volume grows {volume.before('size')} → {volume.after('size')} GB (its file system "
                     "grows with it)")  # fmt: skip
    for step in part.steps:
        if step.type.startswith("hcloud:") and step.type != HCLOUD_SERVER and step.op not in ("create", "delete"):
            if step.type == HCLOUD_VOLUME and step.changed == ("size",):
                continue
            lines.append(f"{label}: its {step.type.rsplit(':', 1)[-1]} changes ({', '.join(step.changed)})")
    if not lines and part.created and existing is not None:
        lines.append(f"{label}: an existing server, {existing}, reached over SSH")
    return lines


def primary_ipv4(machine: Step) -> bool:
    """Whether the server is to be reached at a primary IPv4 of quayside's (server.primary_ipv4)."""
    nets = machine.after("publicNets") or []
    return any(isinstance(net, dict) and net.get("ipv4") for net in nets)


def volume_size(part: Part) -> str:
    volume = part.of_type(HCLOUD_VOLUME)
    return str(volume.after("size")) if volume is not None else "?"


def program_warnings(preview: Mapping[str, Any]) -> list[str]:
    """What quayside's program warns about (a server ignoring changed user data or SSH keys), as WARNING lines."""
    return [
        "WARNING: " + str(diagnostic.get("message", "")).strip().removeprefix(PROGRAM_WARNING)
        for diagnostic in preview.get("diagnostics") or []
        if diagnostic.get("severity") == "warning" and str(diagnostic.get("message", "")).startswith(PROGRAM_WARNING)
    ]


def describe_volumes(steps: list[Step]) -> list[str]:
    """Any volume deleted or replaced, whatever made it: the data on it goes."""
    return [
        f"WARNING: volume {step.name}: {'deleted' if step.op == 'delete' else 'replaced'}: the data on it goes"
        for step in steps
        if step.type.lower().endswith("volume:volume") and (step.op == "delete" or step.op in REPLACE_OPS)
    ]


def config_object(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A config object of the preview (which shows config values as JSON text); {} when absent or not an object."""
    try:
        value = json.loads(str(config.get(f"quayside:{key}", "{}")))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def existing_hosts(config: Mapping[str, Any]) -> dict[str | None, str]:
    """`host` of each existing server in the stack's config: by name with `servers:`, under None with `server:`."""
    settings: dict[str | None, Any] = {None: config_object(config, "server")}
    if "quayside:servers" in config:
        settings = {str(name): server for name, server in config_object(config, "servers").items()}
    return {
        name: str(server["host"])
        for name, server in settings.items()
        if isinstance(server, dict) and server.get("provider") == "existing" and isinstance(server.get("host"), str)
    }


def server_moves(steps: list[Step], config: Mapping[str, Any]) -> dict[str | None, tuple[str, str]]:
    """(old, new) address of each existing server whose host changes: the stack's outputs (`server_host`, or
    `servers.<name>.host`) against the config."""
    stack = next((step for step in steps if step.type == "pulumi:pulumi:Stack"), None)
    outputs = (stack.old.get("outputs") or {}) if stack else {}
    servers = outputs.get("servers") if "quayside:servers" in config else None
    was: dict[str | None, Any] = {None: outputs.get("server_host")}
    if isinstance(servers, dict):
        was = {str(name): server.get("host") for name, server in servers.items() if isinstance(server, dict)}
    moves: dict[str | None, tuple[str, str]] = {}
    for name, now in existing_hosts(config).items():
        before = was.get(name)
        if isinstance(before, str) and before != now and "[secret]" not in (before, now):
            moves[name] = (before, now)
    return moves


def accessory_servers(config: Mapping[str, Any]) -> dict[str, str]:
    """Each accessory's server in a stack with `servers:` (its `server`, else as the config places it: postgres and
    vector on the first server, backup beside postgres); {} with `server:`."""
    servers = list(config_object(config, "servers"))
    if not servers:
        return {}
    accessories = config_object(config, "accessories")
    named = {
        name: str(settings["server"])
        for name, settings in accessories.items()
        if isinstance(settings, dict) and isinstance(settings.get("server"), str)
    }
    postgres = named.get("postgres", servers[0])
    return {"postgres": postgres, "backup": postgres, "vector": servers[0], **named}


def server_label(kind: str, server: str | None) -> str:
    """`host`, or `host app-2` for a server's part in a stack with `servers:`."""
    return kind if server is None else f"{kind} {server}"


def says_nothing(step: Step) -> bool:
    """The stack itself, and the default providers a first deploy makes: nothing to tell about the service."""
    return step.type == "pulumi:pulumi:Stack" or (step.type.startswith("pulumi:providers:") and step.op == "create")


def parts_of(steps: list[Step], service: str) -> list[Part]:
    """The steps by the component they belong to (a resource belongs to its parent), in the order of ORDER."""
    parts: dict[str, Part] = {}
    for step in steps:
        kind = PARTS.get(step.type)
        key = step.urn if kind is not None else step.parent
        parent_type = key.split("::")[-2].rsplit("$", 1)[-1] if "::" in key else ""
        kind = "network" if step.type in NETWORK_TYPES else kind or PARTS.get(parent_type)
        if kind is None:
            if not says_nothing(step):
                parts.setdefault(step.urn, Part("other", step.name, None, [step]))
            continue
        if kind == "network":
            # One network per stack, its attachments wherever they are parented.
            part = parts.setdefault("network", Part("network", "network"))
            if step.type == "quayside:index:PrivateNetwork":
                part.own = step
            else:
                part.steps.append(step)
            continue
        name = key.split("::")[-1]
        server = None
        if kind in SERVER_KINDS and name.startswith(f"{service}-{kind}-"):
            server = name.removeprefix(f"{service}-{kind}-")
        label = (
            name.removeprefix(f"{service}-") if kind in ("role", "accessory", "image") else server_label(kind, server)
        )
        part = parts.setdefault(key, Part(kind, label, name=name, server=server))
        if step.urn == key:
            part.own = step
        else:
            part.steps.append(step)
    return sorted(parts.values(), key=lambda part: ORDER.index(part.kind))


# How each kind of part is told (the server's words need the config too).
DESCRIBERS: Final[dict[str, Callable[[Part], list[str]]]] = {
    "role": describe_role,
    "accessory": describe_accessory,
    "image": describe_image,
    "proxy": describe_proxy,
    "host": describe_host,
    "bootstrap": describe_bootstrap,
}


def describe(preview: Mapping[str, Any]) -> list[str]:
    """The plan in lines: warnings first, then servers, network, hosts, proxies, accessories and roles in deploy
    order."""
    all_steps = [Step.read(raw) for raw in preview.get("steps") or []]
    config = preview.get("config") or {}
    service = str(config.get("quayside:service", ""))
    existing, placed = existing_hosts(config), accessory_servers(config)
    lines = program_warnings(preview) + describe_volumes(all_steps)
    for server, moved in server_moves(all_steps, config).items():
        lines += describe_server(Part("server", server_label("server", server)), moved)
    for part in parts_of([step for step in all_steps if step.op not in QUIET_OPS], service):
        if part.kind == "server":
            lines += describe_server(part, None, existing.get(part.server))
        elif part.kind == "network":
            lines += describe_network(part, service)
        elif part.kind == "accessory":
            part.server = placed.get(part.label)
            lines += describe_accessory(part)
        elif part.kind in DESCRIBERS:
            lines += DESCRIBERS[part.kind](part)
        else:
            lines += [f"{part.label}: {step.op} ({step.type})" for step in part.steps]
    if not lines:
        same = (preview.get("changeSummary") or {}).get("same", 0)
        return [f"nothing changes: all {same} resources stay as they are"]
    unique = list(dict.fromkeys(lines))
    return [line for line in unique if line.startswith("WARNING:")] + [
        line for line in unique if not line.startswith("WARNING:")
    ]


def failures(preview: Mapping[str, Any]) -> list[str]:
    """The preview's own errors, as Pulumi printed them."""
    return [
        str(diagnostic.get("message", "")).strip()
        for diagnostic in preview.get("diagnostics") or []
        if diagnostic.get("severity") == "error"
    ]


def show(text: str) -> int:
    """Prints the plan of a preview's JSON text (its errors, when it failed); 1 when it failed, else 0."""
    if not text.strip():
        print("plan: pulumi preview printed nothing (it failed before it began: see its errors above)")
        return 1
    preview: dict[str, Any] = json.loads(text)
    errors = failures(preview)
    if errors:
        print("the preview failed:")
        print("\n".join(errors))
        return 1
    print("\n".join(describe(preview)))
    return 0


def main(argv: list[str]) -> int:
    return show(Path(argv[0]).read_text() if argv else sys.stdin.read())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
