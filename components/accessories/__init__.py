"""Accessories: long-lived containers beside the app roles, each a component owning its container and data dir.

Their section of the stack config is components/config/accessories.py.

container.py  one accessory container as a remote command running scripts/accessory.sh
postgres.py   Postgres, health-checked, its data bind-mounted and kept; the database URL (secret)
backup.py     the backup image and container: scheduled pg_dump | gpg | rclone to S3, pruned
vector.py     Vector shipping the service's Docker logs to Better Stack; its config generated here
wiring.py     deploy_accessories(): the three in order, for stack.py
"""
