#!/usr/bin/env bash
# Install (or upgrade) the edge agent on a store PC, enroll it with central, and start it.
#
#   sudo installers/install-agent.sh --central https://cdp.example.com --token TOKEN --pos-port /dev/ttyUSB0
#
# Options:
#   --central URL        central's base URL (needed to enroll)
#   --token TOKEN        single-use enrollment token from `central-server enroll-token --store S001`
#   --pos-port URL       the POS's serial port or pyserial URL (written to a new agent.toml)
#   --baudrate N         serial speed (default 9600)
#   --encoding NAME      POS text encoding (default auto: UTF-8, then GB18030)
#   --prefix DIR         where the virtual environment goes (default /opt/retail-cdp)
#   --etc-dir DIR        settings directory (default /etc/edge-agent)
#   --state-dir DIR      data directory (default /var/lib/edge-agent)
#   --user NAME          service account (default edge-agent)
#   --no-systemd         do not install or start the systemd unit
#   --no-pip             reuse the packages already in the virtual environment
# Re-running upgrades the package and restarts the service; an existing agent.toml and enrollment are kept.
set -euo pipefail
PROG=install-agent
# shellcheck source=installers/common.sh
. "$(dirname "$0")/common.sh"

CENTRAL="" TOKEN="" POS_PORT="" BAUDRATE=9600 ENCODING=auto
ETC_DIR=/etc/edge-agent STATE_DIR=/var/lib/edge-agent SERVICE_USER=edge-agent
while [ $# -gt 0 ]; do
  case "$1" in
    --central) CENTRAL="$2"; shift 2 ;;
    --token) TOKEN="$2"; shift 2 ;;
    --pos-port) POS_PORT="$2"; shift 2 ;;
    --baudrate) BAUDRATE="$2"; shift 2 ;;
    --encoding) ENCODING="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) common_option "$@"; [ "$USED" -gt 0 ] || die "unknown option $1 (see --help)"; shift "$USED" ;;
  esac
done

require_root
make_user "$SERVICE_USER" dialout
install_package edge

CONFIG="$ETC_DIR/agent.toml"
mkdir -p "$ETC_DIR"
if [ ! -f "$CONFIG" ]; then
  [ -n "$POS_PORT" ] || die "--pos-port is required for a first install"
  cat > "$CONFIG" <<TOML
# Edge agent settings; every key is described in the README's configuration reference.
[agent]
data_dir = "$STATE_DIR"

[pos]
port = "$POS_PORT"
baudrate = $BAUDRATE
encoding = "$ENCODING"
TOML
  chmod 0644 "$CONFIG"
  say "wrote $CONFIG"
else
  say "keeping existing $CONFIG"
fi

make_state_dir "$STATE_DIR" "$SERVICE_USER"

as_agent() { runuser -u "$SERVICE_USER" -- env EDGE_CONFIG="$CONFIG" "$PREFIX/venv/bin/edge-agent" "$@"; }
as_agent check-config >/dev/null || die "$CONFIG is not valid (run: EDGE_CONFIG=$CONFIG $PREFIX/venv/bin/edge-agent check-config)"

if [ -f "$STATE_DIR/credentials.json" ]; then
  say "already enrolled; keeping $STATE_DIR/credentials.json"
else
  [ -n "$CENTRAL" ] && [ -n "$TOKEN" ] || die "--central and --token are required to enroll a new agent"
  as_agent enroll --central "$CENTRAL" "--token=$TOKEN"
fi

if [ "$SERVICE_USER" = edge-agent ]; then
  install_unit edge-agent "EDGE_CONFIG=$CONFIG $PREFIX/venv/bin/edge-agent run"
else
  say "custom --user: systemd unit not installed (it runs as edge-agent)"
fi
as_agent doctor || say "doctor reported problems above; fix them and run: $PREFIX/venv/bin/edge-agent doctor"
