#!/usr/bin/env bash
# Makes sure a nats-server with JetStream (version 2.9 or later) is available to `make run` and the
# tests. Prints nothing and exits 0 when one is already there (this runs before every `make test`,
# so that path stays fast). Otherwise installs the Debian/Ubuntu package with apt-get when that is
# possible without a password (root, or passwordless sudo), and else explains what to install and
# exits 1.
#
# Environment:
#   NATS_SERVER_BIN   use this binary instead of looking one up; it is never installed over
set -euo pipefail

readonly MIN_MAJOR=2
readonly MIN_MINOR=9

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

found_version=""

# Succeeds when binary $1 reports a version >= MIN_MAJOR.MIN_MINOR (every such release has JetStream).
version_ok() {
  local out
  found_version=""
  out=$("$1" --version 2>/dev/null) || return 1
  # `nats-server --version` prints e.g. "nats-server: v2.9.10"
  [[ "$out" =~ v?([0-9]+)\.([0-9]+)\.([0-9]+) ]] || return 1
  found_version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
  local major=$((10#${BASH_REMATCH[1]})) minor=$((10#${BASH_REMATCH[2]}))
  ((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
}

explain() {
  local problem=$1
  cat >&2 <<MSG
error: $problem
This project needs nats-server ${MIN_MAJOR}.${MIN_MINOR} or later (JetStream is built in). Install one of:
  - Debian/Ubuntu:  sudo apt-get install nats-server   (the binary lands in /usr/sbin)
  - a release from the NATS project: https://github.com/nats-io/nats-server/releases
    (unpack it and put nats-server on PATH), or: go install github.com/nats-io/nats-server/v2@latest
  - or point NATS_SERVER_BIN at a nats-server binary of version ${MIN_MAJOR}.${MIN_MINOR} or later.
MSG
}

current=""
if current=$("$here/nats-server-path.sh" 2>/dev/null); then
  if version_ok "$current"; then
    exit 0
  fi
fi

if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
  if [[ -n "$current" ]]; then
    explain "NATS_SERVER_BIN=$NATS_SERVER_BIN reports version ${found_version:-unknown}, older than ${MIN_MAJOR}.${MIN_MINOR}"
  else
    explain "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file"
  fi
  exit 1
fi

if [[ -n "$current" ]]; then
  problem="$current reports version ${found_version:-unknown}, older than ${MIN_MAJOR}.${MIN_MINOR}"
else
  problem="nats-server was not found (looked on PATH, in /usr/sbin and /usr/bin)"
fi

# Install with apt-get when it can run without asking for a password.
# shellcheck source=apt-install.sh
source "$here/apt-install.sh"
apt_install_or_exit nats-server nats-server nats-server "$problem"

if current=$("$here/nats-server-path.sh" 2>/dev/null) && version_ok "$current"; then
  # The Debian package also enables a system service listening on 127.0.0.1:4222, the port
  # `make run` uses by default.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nats-server 2>/dev/null; then
    echo "note: the package started the system service nats-server on 127.0.0.1:4222; stop it with" \
      "'sudo systemctl disable --now nats-server', or give make run another port with NATS_PORT." >&2
  fi
  exit 0
fi
if [[ -n "$current" ]]; then
  explain "apt-get installed nats-server ${found_version:-of unknown version}, older than ${MIN_MAJOR}.${MIN_MINOR}"
else
  explain "apt-get finished but no nats-server binary was found (see $apt_install_log)"
fi
exit 1
