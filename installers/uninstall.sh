#!/usr/bin/env bash
# Remove the edge agent or the central server from this machine.
#
#   sudo installers/uninstall.sh agent|central [--purge] [--etc-dir DIR] [--state-dir DIR]
#
# Without --purge the settings and the data directory (outbox, keys, database) are kept, so a
# reinstall picks up where it left off. --purge deletes them too: for the agent that discards any
# events not yet delivered to central. The directories are those the installed systemd unit names
# (as the installer's --etc-dir and --state-dir wrote them), else the defaults; --etc-dir and
# --state-dir name them where no unit is installed.
set -euo pipefail
PROG=uninstall
# shellcheck source=installers/common.sh
. "$(dirname "$0")/common.sh"

WHAT="${1:-}"; shift || true
PURGE=0 ETC_DIR="" STATE_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) PURGE=1; shift ;;
    *) common_option "$@"; [ "$USED" -gt 0 ] || die "unknown option $1 (usage: $0 agent|central [--purge])"; shift "$USED" ;;
  esac
done
case "$WHAT" in
  agent) UNIT=edge-agent VAR=EDGE_CONFIG ;;
  central) UNIT=central-server VAR=CENTRAL_CONFIG ;;
  *) die "usage: $0 agent|central [--purge] [--etc-dir DIR] [--state-dir DIR]" ;;
esac
UNIT_FILE="${UNIT_DIR:-/etc/systemd/system}/$UNIT.service"
if [ -f "$UNIT_FILE" ]; then
  config="$(sed -n "s#^Environment=$VAR=##p" "$UNIT_FILE" | head -n 1)"
  [ -n "$ETC_DIR" ] || [ -z "$config" ] || ETC_DIR="$(dirname "$config")"
  [ -n "$STATE_DIR" ] || STATE_DIR="$(sed -n 's#^ReadWritePaths=##p' "$UNIT_FILE" | head -n 1)"
fi
ETC="${ETC_DIR:-/etc/$UNIT}" STATE="${STATE_DIR:-/var/lib/$UNIT}"
require_root
if [ -d /run/systemd/system ] && [ -f "$UNIT_FILE" ]; then
  systemctl disable --now "$UNIT.service" || true
  rm -f "$UNIT_FILE"
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
