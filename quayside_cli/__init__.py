"""`quayside`: day-2 operations on a deployed quayside stack (details, logs, exec, rollback, maintenance, backups,
plan, audit), over the same SSH connection the deploys use, read from the selected Pulumi stack."""
