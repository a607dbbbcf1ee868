"""Each remote script's interface, declared once: its options, which of them it requires, and how a plan names
a change of one.

Python builds every script's command line from these declarations (`Script.argv`); the plan reads a preview's
command lines by them and names a changed option in their words. A script keeps no default of its own: what it
needs it requires, and Python always sends it, so a default lives in one place (components/defaults.py and the
config models). tests/unit/test_steps.py reads each script's option parser and holds it to its declaration: every
flag Python can send is one the script parses, and every option the script requires is one Python sends.

Plain data, no Pulumi: scripts/rollback builds a swap's command line from here before it imports the SDK.
"""

from __future__ import annotations

import enum
import keyword
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final


class Kind(enum.Enum):
    VALUE = "value"  # --flag VALUE, at most once
    LIST = "list"  # --flag VALUE, once per value
    SWITCH = "switch"  # --flag, or nothing
    TOGGLE = "toggle"  # --flag or --no-flag, always one of them


@dataclass(frozen=True)
class Option:
    flag: str
    kind: Kind = Kind.VALUE
    # When the script refuses to run without it: always, for some first arguments (actions) only, or whenever
    # another option (a switch or toggle that is on, or a value that is given) is there.
    required: bool = False
    required_for: tuple[str, ...] = ()
    required_with: str | None = None
    # How a plan names a change of it; by default the flag's own words ("health path").
    words: str | None = None
    # It says which step runs (the service, the role...), not how: a plan does not list it as a change.
    names_step: bool = False
    # It tunes the step itself (how long it waits for its lock), not what the step makes: nor is it a change.
    tunes_step: bool = False

    @property
    def key(self) -> str:
        """The keyword `Script.argv` takes it by (`from_` for --from)."""
        key = self.flag.replace("-", "_")
        return f"{key}_" if keyword.iskeyword(key) else key

    @property
    def said(self) -> str:
        return self.words or self.flag.replace("-", " ")

    @property
    def flags(self) -> tuple[str, ...]:
        """Every spelling the script parses."""
        return (f"--{self.flag}", f"--no-{self.flag}") if self.kind is Kind.TOGGLE else (f"--{self.flag}",)

    @property
    def takes_value(self) -> bool:
        return self.kind in (Kind.VALUE, Kind.LIST)

    def needed(self, action: str | None, values: Mapping[str, object]) -> bool:
        if self.required or (action is not None and action in self.required_for):
            return True
        other = values.get(Option(self.required_with).key) if self.required_with else None
        return bool(other) if not isinstance(other, str) else other != ""

    def words_for(self, value: object) -> list[str]:
        """This option's words on a command line; nothing when the value is unset (None, False, empty)."""
        if self.kind is Kind.TOGGLE:
            return [f"--{self.flag}" if value else f"--no-{self.flag}"]
        if self.kind is Kind.SWITCH:
            return [f"--{self.flag}"] if value else []
        if self.kind is Kind.LIST:
            assert isinstance(value, Iterable) and not isinstance(value, str), f"--{self.flag} takes a list"
            return [word for item in value for word in (f"--{self.flag}", str(item))]
        return [] if value is None else [f"--{self.flag}", str(value)]


# What one parsed command line holds: the first argument (an action), each option's value by key, and the
# command after `--`.
Parsed = dict[str, object]


@dataclass(frozen=True)
class Script:
    name: str
    options: tuple[Option, ...]
    actions: tuple[str, ...] = ()  # its first argument is one of these
    command: bool = False  # the line ends with `-- COMMAND [ARG]...`

    def option(self, flag: str) -> Option:
        """The option a flag belongs to (`--no-proxy` is the proxy toggle's)."""
        name = flag.removeprefix("--")
        for option in self.options:
            if name == option.flag or (option.kind is Kind.TOGGLE and name == f"no-{option.flag}"):
                return option
        raise ValueError(f"{self.name} has no option {flag}")

    def words(self, values: Mapping[str, object]) -> list[str]:
        """The options among `values` on a command line, in declared order, without the action or command."""
        unknown = sorted(set(values) - {option.key for option in self.options})
        if unknown:
            raise TypeError(f"{self.name} has no option --{unknown[0].replace('_', '-')}")
        return [
            word for option in self.options if option.key in values for word in option.words_for(values[option.key])
        ]

    def argv(self, action: str | None = None, /, **values: object) -> list[str]:
        """The script's whole argument list; refuses what the script would refuse for a missing option. `command`
        is the command after `--`, for a script that takes one."""
        command = values.pop("command", [])
        assert isinstance(command, Sequence) and not isinstance(command, str), "command is a list of words"
        if (action is None) != (not self.actions) or (action is not None and action not in self.actions):
            raise ValueError(f"{self.name} takes {' | '.join(self.actions) or 'no action'} first, not {action!r}")
        for option in self.options:
            if option.needed(action, values) and option.words_for(values.get(option.key)) == []:
                raise ValueError(f"{' '.join([self.name, *([action] if action else [])])}: --{option.flag} is required")
        if command and not self.command:
            raise ValueError(f"{self.name} takes no command")
        if self.command and not command:
            raise ValueError(f"{self.name} needs a command after --")
        return [
            *([action] if action else []),
            *self.words(values),
            *(["--", *map(str, command)] if self.command else []),
        ]

    def parse(self, words: Sequence[str]) -> Parsed:
        """A command line of this script back into values: `action`, each option's by key, and `command`."""
        rest = list(words)
        found: Parsed = {}
        if self.actions and rest and not rest[0].startswith("--"):
            found["action"] = rest.pop(0)
        while rest:
            word = rest.pop(0)
            if word == "--" and self.command:
                found["command"] = rest
                break
            option = self.option(word)
            if option.kind is Kind.TOGGLE:
                found[option.key] = word == f"--{option.flag}"
            elif option.kind is Kind.SWITCH:
                found[option.key] = True
            elif not rest:
                raise ValueError(f"{self.name}: {word} needs a value")
            elif option.kind is Kind.LIST:
                listed = found.setdefault(option.key, [])
                assert isinstance(listed, list)
                listed.append(rest.pop(0))
            else:
                found[option.key] = rest.pop(0)
        return found


def _required(flag: str) -> Option:
    return Option(flag, required=True)


def _naming(flag: str) -> Option:
    return Option(flag, required=True, names_step=True)


def _boot(flag: str) -> Option:
    """A value only the boot action needs."""
    return Option(flag, required_for=("boot",))


def _list(flag: str) -> Option:
    return Option(flag, Kind.LIST)


def _switch(flag: str) -> Option:
    return Option(flag, Kind.SWITCH)


SERVICE: Final = _naming("service")
LOCK_WAIT: Final = Option("lock-wait", required=True, tunes_step=True)
PROXY_NAME: Final = _naming("proxy-name")

SWAP: Final = Script(
    "swap.sh",
    (
        SERVICE,
        _naming("role"),
        _required("image"),
        _naming("version"),
        _naming("config-hash"),
        _required("port"),
        Option("proxy", Kind.TOGGLE, required=True),
        _switch("tls"),
        Option("no-tls-redirect", Kind.SWITCH, words="plain HTTP beside HTTPS"),
        Option("tls-certificate-path", words="certificate file"),
        # Which certificate the file holds: a new one is served without booting a new container. A rollback's fast
        # switch leaves it out: it serves the file as it is.
        Option("tls-certificate-id", words="certificate"),
        # A canary: the version goes live for this share of kamal-rollout cookie values and these values only,
        # beside the version serving. Outside the config hash: promoted, the canary's container serves everyone.
        Option("canary-percent", words="canary share"),
        Option("canary-allow", Kind.LIST, words="canary allow-list"),
        # stop-first: when memory is short, the version serving stops before the new one boots. Sent only then, and
        # outside the config hash: it changes what a swap may do, not what the container runs with.
        Option("memory-short", words="what a swap does when memory is short"),
        _list("host"),
        _list("path-prefix"),
        Option("health-path", required_with="proxy"),
        Option("health-interval", required_with="proxy"),
        Option("health-timeout", required_with="proxy"),
        _required("deploy-timeout"),
        _required("drain-timeout"),
        _required("readiness-delay"),
        _required("retain"),
        _required("stop-timeout"),
        _list("env"),
        _list("volume"),
        Option("memory"),
        Option("cpus"),
        PROXY_NAME,
        _switch("retained-only"),
        # How many times `pulumi up` found the role not serving what the stack recorded (components/drift.py): a new
        # count re-runs the swap, which puts that version back. The container runs the same, so outside the hash.
        Option("heal", words="heal count"),
        LOCK_WAIT,
        _list("cmd"),
    ),
)
RETIRE: Final = Script(
    "retire.sh",
    (
        SERVICE, _naming("role"), _naming("version"), Option("proxy", Kind.TOGGLE, required=True), PROXY_NAME,
        LOCK_WAIT,
    ),
)  # fmt: skip
MIGRATE: Final = Script(
    "migrate.sh",
    (SERVICE, _naming("role"), _required("image"), _naming("version"), _list("env"), LOCK_WAIT),
    command=True,
)
ACCESSORY: Final = Script(
    "accessory.sh",
    (
        SERVICE,
        _naming("name"),
        _boot("image"),
        Option("config-hash", required_for=("boot",), names_step=True),
        Option("network", required_for=("boot",), names_step=True),
        _list("env"),
        Option("data"),
        _list("volume"),
        _list("file"),
        _list("publish"),
        Option("health-cmd"),
        Option("health-interval", required_with="health-cmd"),
        _boot("ready-timeout"),
        _boot("readiness-delay"),
        _required("stop-timeout"),
        Option("memory"),
        _switch("delete-data"),
        # How a restart goes, not what runs (outside the config hash): these roles' routes are held at the proxy,
        # each request up to --hold-for, while the old container stops and the new one becomes ready.
        Option("hold-for", words="requests held"),
        Option("hold-role", Kind.LIST, words="roles held"),
        Option("proxy-name", required_with="hold-for", names_step=True),
        # How many times `pulumi up` found it not running as recorded (components/drift.py): a new count runs the
        # step again, which starts it. Outside the config hash: the container runs the same.
        Option("heal", words="heal count"),
        _list("cmd"),
    ),
    actions=("boot", "remove"),
)
PROXY: Final = Script(
    "proxy.sh",
    (
        _boot("image"),
        _naming("network"),
        _naming("name"),
        _required("proxy-network"),
        _boot("http-port"),
        _boot("https-port"),
        _boot("bind"),
        _boot("state-volume"),
        _boot("state-dir"),
        # How many times `pulumi up` found it not running as recorded (components/drift.py): a new count runs the
        # step again, which starts it. Outside the config hash: the container runs the same.
        Option("heal", words="heal count"),
    ),
    actions=("boot", "remove"),
)
TLS_CERTIFICATE: Final = Script(
    "tls-certificate.sh",
    (SERVICE, _naming("role"), PROXY_NAME, _required("state-dir"), _required("path")),
    actions=("write", "remove"),
)
# A role's route on the load balancer's kamal-proxy: its hostnames to each of its servers' proxies.
BALANCER: Final = Script(
    "balancer.sh",
    (
        SERVICE,
        _naming("role"),
        PROXY_NAME,
        Option("target", Kind.LIST, required_for=("deploy",), words="servers"),
        _list("host"),
        _list("path-prefix"),
        Option("health-path", required_for=("deploy", "check")),
        Option("health-interval", required_for=("deploy",)),
        Option("health-timeout", required_for=("deploy",)),
        _switch("tls"),
        Option("no-tls-redirect", Kind.SWITCH, words="plain HTTP beside HTTPS"),
        Option("deploy-timeout", required_for=("deploy",)),
        Option("drain-timeout", required_for=("deploy",)),
    ),
    actions=("deploy", "remove", "check"),
)
HOST: Final = Script(
    "host.sh", (SERVICE, _switch("no-install-docker"), Option("stack-id", required=True, words="stack"))
)
HOST_REMOVE: Final = Script("host-remove.sh", (SERVICE,))
REGISTRY_LOGIN: Final = Script("registry-login.sh", (_required("server"), _required("username")))
BOOTSTRAP: Final = Script(
    "bootstrap.sh",
    (
        SERVICE,
        _required("deploy-user"),
        _required("swap-mb"),
        _switch("no-unattended-upgrades"),
        _switch("no-install-docker"),
    ),
)
VOLUME: Final = Script(
    "volume.sh", (_required("device"), _required("mount-point"), _required("wait"), _required("fstab"))
)
HOST_KEY: Final = Script("host-key.sh", (_required("was"),))
IMAGE_RECEIVE: Final = Script("image-receive.sh", (SERVICE, _required("image-id"), _required("tag")))
BACKUP: Final = Script(
    "backup.sh",
    (
        Option("service", required_for=("now", "restore", "list", "prune"), names_step=True),
        Option("from", required_for=("image",)),
        Option("tag", required_for=("image",)),
        Option("backup", required_for=("restore",)),
        _switch("passphrase-stdin"),
        _switch("private-key-stdin"),
        _switch("s3-key-stdin"),
    ),
    actions=("image", "now", "restore", "list", "prune"),
)
# The `quayside` command's steps.
DETAILS: Final = Script("details.sh", (SERVICE, PROXY_NAME))
LOGS: Final = Script(
    "logs.sh",
    (
        SERVICE,
        Option("role"),
        Option("accessory"),
        _switch("follow"),
        Option("since"),
        Option("lines"),
        Option("grep"),
        PROXY_NAME,
    ),
)
EXEC: Final = Script(
    "exec.sh",
    (SERVICE, _naming("role"), PROXY_NAME, _switch("reuse"), _switch("interactive"), _switch("tty")),
    command=True,
)
MAINTENANCE: Final = Script(
    "maintenance.sh",
    (SERVICE, _naming("role"), Option("message"), _required("drain-timeout"), PROXY_NAME),
    actions=("on", "off"),
)
AUDIT: Final = Script("audit.sh", (SERVICE, _required("lines")))
# The rollout's read of each server before it touches any (components/rollout.py).
LIVE: Final = Script("live.sh", (SERVICE, _naming("role"), PROXY_NAME))
# The drift check's read of each server at `pulumi preview`/`up` (components/drift.py).
SERVING: Final = Script("serving.sh", (SERVICE, PROXY_NAME))

SCRIPTS: Final = {
    script.name: script
    for script in (
        SWAP, RETIRE, MIGRATE, ACCESSORY, PROXY, TLS_CERTIFICATE, BALANCER, HOST, HOST_REMOVE, REGISTRY_LOGIN,
        BOOTSTRAP, VOLUME, HOST_KEY, IMAGE_RECEIVE, BACKUP, DETAILS, LOGS, EXEC, MAINTENANCE, AUDIT, LIVE, SERVING,
    )
}  # fmt: skip


def script_of(words: Sequence[str]) -> tuple[Script, list[str]] | None:
    """In a step's command line (`timeout ... bash <dir>/swap.sh ARGS`), the script and its arguments."""
    for index, word in enumerate(words):
        script = SCRIPTS.get(word.rsplit("/", 1)[-1])
        if script is not None:
            return script, list(words[index + 1 :])
    return None
