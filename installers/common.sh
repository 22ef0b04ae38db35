# Shared by the installers: run as root on Debian/Ubuntu-like systems with Python 3.11+.
# shellcheck shell=bash

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${PREFIX:-/opt/retail-cdp}"
SYSTEMD=1
PIP=1

# common_option ARGS...: take an option both installers share; sets USED to the words it took (0: not ours).
common_option() {
  USED=2
  case "$1" in
    --prefix) check_unit_path "$1" "${2:-}"; PREFIX="${2%/}" ;;
    --etc-dir) check_unit_path "$1" "${2:-}"; ETC_DIR="${2%/}" ;;
    --state-dir) check_unit_path "$1" "${2:-}"; STATE_DIR="${2%/}" ;;
    --user) SERVICE_USER="$2" ;;
    --no-systemd) SYSTEMD=0; USED=1 ;;
    --no-pip) PIP=0; USED=1 ;;
    *) USED=0 ;;
  esac
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# check_unit_path OPTION DIR: stop unless a systemd unit can name DIR (absolute; no spaces, quotes,
# '#', '&', '%' or backslashes, which a unit line or the installer's substitution would read otherwise).
check_unit_path() {
  case "$2" in
    /?*) ;;
    *) die "$1 needs an absolute path, got '${2}'" ;;
  esac
  case "$2" in
    *[[:space:]\"\'#\&%\\]*) die "$1 '$2': use a path without spaces, quotes, '#', '&', '%' or backslashes" ;;
  esac
}

require_root() {
  [ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0 ...)"
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  die "Python 3.11 or newer is required (apt-get install python3 python3-venv)"
}

# make_user NAME [GROUP...]: a system account without a login shell or home directory.
make_user() {
  local name="$1"; shift
  if [ "$name" = root ] || id -u "$name" >/dev/null 2>&1; then
    :
  else
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$name"
    say "created system user $name"
  fi
  local group
  for group in "$@"; do
    if getent group "$group" >/dev/null; then usermod -a -G "$group" "$name"; fi
  done
}

# make_state_dir DIR USER: the service's data directory, readable by that user alone.
make_state_dir() {
  mkdir -p "$1"
  chown "$2:" "$1"
  chmod 0700 "$1"
}

# install_package EXTRA: the project into $PREFIX/venv (created if missing); re-running upgrades it.
install_package() {
  local extra="$1"
  if [ ! -x "$PREFIX/venv/bin/python" ]; then
    mkdir -p "$PREFIX"
    "$(find_python)" -m venv "$PREFIX/venv"
  fi
  if [ "$PIP" -eq 1 ]; then
    say "installing retail-cdp[$extra] into $PREFIX/venv"
    "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SRC_DIR[$extra]"
  fi
}

# render_unit NAME: systemd/NAME.service for this prefix and these settings and data directories
# (defaults /opt/retail-cdp, /etc/NAME and /var/lib/NAME). A data directory of its own is not
# systemd's StateDirectory (which is always under /var/lib), only writable through ReadWritePaths.
render_unit() {
  local name="$1"
  local etc="${ETC_DIR:-/etc/$name}" state="${STATE_DIR:-/var/lib/$name}"
  local rules=(-e "s#/opt/retail-cdp#$PREFIX#g" -e "s#/etc/$name\([/ ]\|\$\)#$etc\1#g"
    -e "s#/var/lib/$name\([/ ]\|\$\)#$state\1#g")
  [ "$state" = "/var/lib/$name" ] || rules+=(-e '/^StateDirectory/d')
  sed "${rules[@]}" "$SRC_DIR/systemd/$name.service"
}

# install_unit NAME START: install render_unit's unit, then enable and (re)start it;
# START is the command to show where systemd is not available.
install_unit() {
  local name="$1" START="$2" unit_dir="${UNIT_DIR:-/etc/systemd/system}"
  if [ "$SYSTEMD" -ne 1 ]; then
    say "not installing the systemd unit (--no-systemd); start it with: $START"
    return 0
  fi
  if [ ! -d /run/systemd/system ]; then
    say "systemd is not running here; unit not installed. Start it with: $START"
    return 0
  fi
  render_unit "$name" > "$unit_dir/$name.service"
  systemctl daemon-reload
  systemctl enable "$name.service" >/dev/null
  systemctl restart "$name.service"
  say "systemd unit $name.service enabled and started (journalctl -u $name -f)"
}
