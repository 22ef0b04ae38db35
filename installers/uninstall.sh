#!/usr/bin/env bash
# Remove the edge agent or the central server from this machine.
#
#   sudo installers/uninstall.sh agent|central [--purge]
#
# Without --purge the settings and the data directory (outbox, keys, database) are kept, so a
# reinstall picks up where it left off. --purge deletes them too: for the agent that discards any
# events not yet delivered to central.
set -euo pipefail
PROG=uninstall
# shellcheck source=installers/common.sh
. "$(dirname "$0")/common.sh"

WHAT="${1:-}"; shift || true
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1
case "$WHAT" in
  agent) UNIT=edge-agent ETC=/etc/edge-agent STATE=/var/lib/edge-agent ;;
  central) UNIT=central-server ETC=/etc/central-server STATE=/var/lib/central-server ;;
  *) die "usage: $0 agent|central [--purge]" ;;
esac
require_root
if [ -d /run/systemd/system ] && [ -f "/etc/systemd/system/$UNIT.service" ]; then
  systemctl disable --now "$UNIT.service" || true
  rm -f "/etc/systemd/system/$UNIT.service"
  systemctl daemon-reload
  say "removed $UNIT.service"
fi
if [ "$PURGE" -eq 1 ]; then
  rm -rf "$ETC" "$STATE"
  say "purged $ETC and $STATE"
else
  say "kept $ETC and $STATE (use --purge to delete them)"
fi
say "the virtual environment in $PREFIX/venv is shared by both services; remove it when neither is installed"
