#!/usr/bin/env bash
# Makes sure a Chromium that runs headless is available to `make test-browser` (driven by
# playwright-core with its executablePath). Prints nothing and exits 0 when one is already there.
# Otherwise installs the Debian package chromium with apt-get when that is possible without a
# password (root, or passwordless sudo), and else explains what to install and exits 1.
# With --print-path, prints the binary's path on success (the browser tests read it).
#
# Environment:
#   CHROMIUM_BIN   use this binary instead of looking one up; it is never installed over
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

print_path=0
if [[ "${1:-}" == "--print-path" ]]; then
  print_path=1
fi

# The Chromium binary to use, or nothing: CHROMIUM_BIN, else Debian's /usr/bin/chromium, else PATH.
find_chromium() {
  if [[ -n "${CHROMIUM_BIN:-}" ]]; then
    command -v -- "$CHROMIUM_BIN" 2>/dev/null || true
    return
  fi
  local candidate
  for candidate in /usr/bin/chromium chromium chromium-browser; do
    if command -v -- "$candidate" >/dev/null 2>&1; then
      command -v -- "$candidate"
      return
    fi
  done
}

# Succeeds when binary $1 runs and reports its version (`chromium --version`: "Chromium 156.0...").
works() {
  "$1" --version >/dev/null 2>&1
}

done_with() {
  if ((print_path)); then
    echo "$1"
  fi
  exit 0
}

explain() {
  local problem=$1
  cat >&2 <<MSG
error: $problem
make test-browser drives a headless Chromium with playwright-core. Install one of:
  - Debian/Ubuntu:  sudo apt-get install chromium   (the binary lands in /usr/bin/chromium)
  - Fedora:         sudo dnf install chromium
  - or point CHROMIUM_BIN at a Chromium or Chrome binary.
MSG
}

current=$(find_chromium)
if [[ -n "$current" ]] && works "$current"; then
  done_with "$current"
fi

if [[ -n "${CHROMIUM_BIN:-}" ]]; then
  explain "CHROMIUM_BIN=$CHROMIUM_BIN is not a Chromium that runs"
  exit 1
fi

if [[ -n "$current" ]]; then
  problem="$current does not run (chromium --version failed)"
else
  problem="chromium was not found (looked at /usr/bin/chromium and on PATH)"
fi

# Install with apt-get when it can run without asking for a password. The browser tests need
# no recommended extras (no fonts beyond the package's dependencies, no desktop integration).
# shellcheck source=apt-install.sh
source "$here/apt-install.sh"
apt_install_or_exit chromium chromium "Chromium (Debian package chromium)" "$problem" --no-install-recommends

current=$(find_chromium)
if [[ -n "$current" ]] && works "$current"; then
  done_with "$current"
fi
explain "apt-get finished but no working chromium was found (see $apt_install_log)"
exit 1
