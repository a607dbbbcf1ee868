# shellcheck shell=bash
# The sshd_config of the bench's SSH servers, the loopback test server and the test hosts: root by key only, and
# room for a deploy's parallel sessions. Sourced, never run.

# test_sshd_config LISTEN_ADDRESS HOST_KEY PID_FILE AUTHORIZED_KEYS_FILE: prints the config.
test_sshd_config() {
  cat <<CONF
ListenAddress $1
HostKey $2
PidFile $3
AuthorizedKeysFile $4
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
# Remote commands of a deploy run in parallel, one session each.
MaxSessions 64
MaxStartups 64:30:128
# A session's bash reads ~/.bashrc only as a top-level shell: with SHLVL=1 it counts itself nested. A new server's
# root has a .bashrc that does nothing; this machine's sets up developers' tools (about 100 processes a session).
SetEnv SHLVL=1
Subsystem sftp internal-sftp
CONF
}
