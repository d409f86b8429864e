#!/usr/bin/env bash
# Fetches nats-server from Debian trixie (2.10.x) into a private folder, without touching the
# system's apt sources or installed packages, and prints the binary's path:
#
#   export NATS_SERVER_BIN=$(scripts/nats-server-trixie.sh)
#   NATS_CLUSTER_SIZE=3 make run
#
# Why: Debian bookworm's nats-server 2.9.10 does not enforce revision-checked KV updates on a
# replicated (clustered) stream when writers race, which the platform's optimistic concurrency
# needs (README, NATS JetStream); trixie's 2.10 does. The binary is a Go program linked only
# against libc, so it runs on bookworm.
#
# Usage: scripts/nats-server-trixie.sh [folder]   (default .run/nats-server-trixie)
# Needs apt-get and dpkg-deb (Debian or Ubuntu) and the Debian archive keyring.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/.run/nats-server-trixie}"
bin="$dir/root/usr/sbin/nats-server"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [[ ! -r "$keyring" ]]; then
  echo "nats-server-trixie: $keyring is missing (package debian-archive-keyring)" >&2
  exit 1
fi
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/root"
echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" >"$dir/sources.list"
apt_options=(
  -o "Dir::Etc::SourceList=$dir/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$dir/lists"
  -o "Dir::Cache=$dir/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_options[@]}" update >&2
(cd "$dir" && apt-get "${apt_options[@]}" download nats-server >&2)
deb="$(ls -t "$dir"/nats-server_*.deb | head -n 1)"
dpkg-deb -x "$deb" "$dir/root"
"$bin" --version >&2
echo "$bin"
