#!/usr/bin/env bash
# Prints the path of the nats-server binary that `make run` and the tests use, or exits 1 with a
# message on stderr when there is none.
#
# Lookup order (the same as resolveNatsServerBin() in lib/devtools/nats-server.ts):
#   1. $NATS_SERVER_BIN, when set (a path, or a command name looked up on PATH); no fallback then
#   2. nats-server on PATH
#   3. /usr/sbin/nats-server, then /usr/bin/nats-server (Debian installs it in /usr/sbin, which is
#      often missing from a normal user's PATH)
set -euo pipefail

if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
  if [[ "$NATS_SERVER_BIN" == */* ]]; then
    if [[ -f "$NATS_SERVER_BIN" && -x "$NATS_SERVER_BIN" ]]; then
      printf '%s\n' "$NATS_SERVER_BIN"
      exit 0
    fi
  elif found=$(command -v -- "$NATS_SERVER_BIN" 2>/dev/null) && [[ "$found" == */* ]]; then
    printf '%s\n' "$found"
    exit 0
  fi
  echo "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file" >&2
  exit 1
fi

if found=$(command -v nats-server 2>/dev/null) && [[ "$found" == */* ]]; then
  printf '%s\n' "$found"
  exit 0
fi

for candidate in /usr/sbin/nats-server /usr/bin/nats-server; do
  if [[ -f "$candidate" && -x "$candidate" ]]; then
    printf '%s\n' "$candidate"
    exit 0
  fi
done

echo "nats-server not found (looked on PATH, in /usr/sbin and /usr/bin; set NATS_SERVER_BIN to choose one)" >&2
exit 1
