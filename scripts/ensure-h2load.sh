#!/usr/bin/env bash
# Makes sure h2load (the HTTP/1.1, HTTP/2 and gRPC load generator of nghttp2) is available to
# `make bench`. Prints nothing and exits 0 when it is already there. Otherwise installs the
# Debian/Ubuntu package nghttp2-client with apt-get when that is possible without a password
# (root, or passwordless sudo), and else explains what to install and exits 1.
#
# Environment:
#   H2LOAD_BIN   use this binary instead of looking one up on PATH; it is never installed over
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The h2load binary to use, or nothing.
find_h2load() {
  if [[ -n "${H2LOAD_BIN:-}" ]]; then
    command -v -- "$H2LOAD_BIN" 2>/dev/null || true
  else
    command -v h2load 2>/dev/null || true
  fi
}

# Succeeds when binary $1 runs and reports its version (`h2load --version`: "h2load nghttp2/1.52.0").
works() {
  "$1" --version >/dev/null 2>&1
}

explain() {
  local problem=$1
  cat >&2 <<MSG
error: $problem
make bench measures the HTTP figures with h2load (from nghttp2). Install one of:
  - Debian/Ubuntu:  sudo apt-get install nghttp2-client
  - Fedora:         sudo dnf install nghttp2   (macOS: brew install nghttp2)
  - or point H2LOAD_BIN at an h2load binary.
MSG
}

current=$(find_h2load)
if [[ -n "$current" ]] && works "$current"; then
  exit 0
fi

if [[ -n "${H2LOAD_BIN:-}" ]]; then
  explain "H2LOAD_BIN=$H2LOAD_BIN is not an h2load that runs"
  exit 1
fi

if [[ -n "$current" ]]; then
  problem="$current does not run (h2load --version failed)"
else
  problem="h2load was not found on PATH"
fi

# Install with apt-get when it can run without asking for a password.
# shellcheck source=apt-install.sh
source "$here/apt-install.sh"
apt_install_or_exit nghttp2-client h2load "h2load (Debian package nghttp2-client)" "$problem" --no-install-recommends

current=$(find_h2load)
if [[ -n "$current" ]] && works "$current"; then
  exit 0
fi
explain "apt-get finished but no working h2load was found (see $apt_install_log)"
exit 1
