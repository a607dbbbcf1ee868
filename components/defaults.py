"""Every default quayside applies, named once. The config models (components/config/) take their defaults from
here, and the components send them to the remote scripts (components/steps.py), which keep none of their own.
One number the scripts share is fixed on both sides: LOCK_WAIT_SECONDS, also in components/scripts/lib.sh
(tests/unit/test_steps.py holds the two equal)."""

from __future__ import annotations

from typing import Final

# kamal-proxy, as Kamal 2 pins it; the image is configurable so tests can use a locally built one.
PROXY_IMAGE: Final = "basecamp/kamal-proxy"
PROXY_VERSION: Final = "v0.9.2"
PROXY_CONTAINER: Final = "quayside-proxy"
PROXY_STATE_VOLUME: Final = "quayside-proxy-state"
# The proxy's own network, which holds its published ports. Docker gives them to a container's first network by
# name and moves them, refusing connections meanwhile, when that changes: a leading digit sorts before every
# service name (config's Name starts with a letter), so no service joining or leaving moves them.
PROXY_NETWORK: Final = "0-quayside-proxy"
# Where the official image keeps its state (routes survive a reboot because they live here).
PROXY_STATE_DIR: Final = "/home/kamal-proxy/.config/kamal-proxy"
HTTP_PORT: Final = 80
HTTPS_PORT: Final = 443

APP_PORT: Final = 80
HEALTH_PATH: Final = "/up"
HEALTH_INTERVAL: Final = "1s"
HEALTH_TIMEOUT: Final = "5s"
DEPLOY_TIMEOUT: Final = "30s"
DRAIN_TIMEOUT: Final = "30s"
# Roles without the proxy are ready when running this long, unless their image has a Docker healthcheck.
READINESS_DELAY_SECONDS: Final = 7
RETAIN_CONTAINERS: Final = 5
# Docker's own grace after SIGTERM before a stopping container is killed.
STOP_TIMEOUT_SECONDS: Final = 10
# How long a remote step waits for a lock another step of the same part holds, at least; a role's steps wait as
# long as a swap of it may hold its lock (components/swap_command.py lock_wait). Each step's timeout allows for it.
LOCK_WAIT_SECONDS: Final = 300

# What a role's image is built for unless `image.platform` says otherwise: the usual server, as Kamal's builder.
BUILD_PLATFORM: Final = "linux/amd64"

SSH_PORT: Final = 22
# Every IPv4 and IPv6 address: where a Hetzner server's firewall lets SSH in unless `ssh_from` narrows it.
ANYWHERE: Final = ("0.0.0.0/0", "::/0")
SSH_USER: Final = "root"
# A bootstrap connects as root (with the deploy key); it makes the deploy user.
BOOTSTRAP_USER: Final = "root"
# Who deploys to a bootstrapped server (a Hetzner one): root's keys, in the docker group, no sudo.
DEPLOY_USER: Final = "deploy"
# The swap file a bootstrap makes when the server has none (a cx22 has 4 GB of memory).
SWAP_MB: Final = 2048

# Server-side layout: one directory per service.
REMOTE_ROOT: Final = "/var/lib/quayside"

# Seconds a remote step may take beyond its own waits before `timeout` ends it.
STEP_SLACK_SECONDS: Final = 120

# The sizes Hetzner Cloud allows for a volume, in GB.
HETZNER_VOLUME_MIN_GB: Final = 10
HETZNER_VOLUME_MAX_GB: Final = 10240
