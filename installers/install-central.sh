#!/usr/bin/env bash
# Install (or upgrade) the central server on an HQ machine, migrate its database, and start it.
#
#   sudo installers/install-central.sh --host 0.0.0.0 --port 8000 [--database-url postgresql+psycopg://...]
#
# Options:
#   --host ADDR          listen address written to a new central.toml (default 127.0.0.1)
#   --port N             listen port (default 8000)
#   --database-url URL   PostgreSQL URL; default is a SQLite file in the data directory
#   --trusted-proxy ADDR the reverse proxy's address (127.0.0.1 for nginx on this machine; see the README)
#   --admin NAME         create this console administrator (prints a generated password);
#                        skipped, with a note, if a user of that name exists
#   --prefix DIR         where the virtual environment goes (default /opt/retail-cdp)
#   --etc-dir DIR        settings directory (default /etc/central-server)
#   --state-dir DIR      data directory (default /var/lib/central-server)
#   --user NAME          service account (default central-server)
#   --no-systemd         do not install or start the systemd unit
#   --no-pip             reuse the packages already in the virtual environment
# Re-running upgrades the package, applies new migrations and restarts the service.
set -euo pipefail
PROG=install-central
# shellcheck source=installers/common.sh
. "$(dirname "$0")/common.sh"

HOST=127.0.0.1 PORT=8000 DATABASE_URL_ARG="" ADMIN="" TRUSTED_PROXY=""
ETC_DIR=/etc/central-server STATE_DIR=/var/lib/central-server SERVICE_USER=central-server
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --database-url) DATABASE_URL_ARG="$2"; shift 2 ;;
    --admin) ADMIN="$2"; shift 2 ;;
    --trusted-proxy) TRUSTED_PROXY="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) common_option "$@"; [ "$USED" -gt 0 ] || die "unknown option $1 (see --help)"; shift "$USED" ;;
  esac
done

require_root
make_user "$SERVICE_USER"
install_package central

CONFIG="$ETC_DIR/central.toml"
mkdir -p "$ETC_DIR"
if [ ! -f "$CONFIG" ]; then
  {
    echo "# Central server settings; every key is described in the README's configuration reference."
    echo "[server]"
    echo "host = \"$HOST\""
    echo "port = $PORT"
    echo "data_dir = \"$STATE_DIR\""
    if [ -n "$TRUSTED_PROXY" ]; then
      echo "trusted_proxy = \"$TRUSTED_PROXY\""
    fi
    if [ -n "$DATABASE_URL_ARG" ]; then
      echo
      echo "[database]"
      echo "url = \"$DATABASE_URL_ARG\""
    fi
  } > "$CONFIG"
  chown "root:$SERVICE_USER" "$CONFIG"
  chmod 0640 "$CONFIG"  # it may hold a database password
  say "wrote $CONFIG"
else
  say "keeping existing $CONFIG"
fi

make_state_dir "$STATE_DIR" "$SERVICE_USER"

as_central() { runuser -u "$SERVICE_USER" -- env CENTRAL_CONFIG="$CONFIG" "$PREFIX/venv/bin/central-server" "$@"; }
as_central check-config >/dev/null || die "$CONFIG is not valid (run: CENTRAL_CONFIG=$CONFIG $PREFIX/venv/bin/central-server check-config)"
as_central migrate
if [ -n "$ADMIN" ]; then
  # A re-run (an upgrade) finds the user it made the first time: keep it and its password.
  EXISTING_ROLE="$(as_central user list | awk -F '\t' -v name="$ADMIN" '$1 == name { print $2 }')"
  if [ -z "$EXISTING_ROLE" ]; then
    as_central create-admin --username "$ADMIN"
  elif [ "$EXISTING_ROLE" = admin ]; then
    say "admin user $ADMIN already exists; keeping its password (a new one: CENTRAL_CONFIG=$CONFIG $PREFIX/venv/bin/central-server create-admin --username $ADMIN --reset)"
  else
    say "warning: user $ADMIN already exists as a $EXISTING_ROLE user, not an administrator; no admin created"
  fi
fi
if [ "$SERVICE_USER" = central-server ]; then
  install_unit central-server "CENTRAL_CONFIG=$CONFIG $PREFIX/venv/bin/central-server serve"
else
  say "custom --user: systemd unit not installed (it runs as central-server)"
fi
say "done. Issue an enrollment token per store PC with: CENTRAL_CONFIG=$CONFIG $PREFIX/venv/bin/central-server enroll-token --store S001"
