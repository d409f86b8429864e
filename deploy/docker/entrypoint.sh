#!/bin/sh
# Starts one process of the platform from the image's compiled bundles: the service named by the
# first argument, else by SERVICE. `gateway` runs .build/gateway/main.js, any other name
# .build/services/<name>/main.js. exec: node is the container's main process and gets SIGTERM
# itself (the services drain on it and exit 0).
#
#   ENTRYPOINT_PRINT=1  print the file that would run and exit (checked by test/deploy/dockerfile.test.ts)
#   APP_DIR             where .build/ is (default: this script's folder, /app in the image)
set -eu
app_dir="${APP_DIR:-$(cd "$(dirname "$0")" && pwd)}"
service="${1:-${SERVICE:-}}"
case "$service" in
  "")
    echo "entrypoint: name the process to run: SERVICE=<name> or the first argument (a process of the service registry, lib/service/registry.ts: a service's name, or gateway)" >&2
    exit 64
    ;;
  *[!a-z0-9-]*)
    echo "entrypoint: \"$service\" is not a service name" >&2
    exit 64
    ;;
  gateway) entry="$app_dir/.build/gateway/main.js" ;;
  *) entry="$app_dir/.build/services/$service/main.js" ;;
esac
if [ ! -f "$entry" ]; then
  echo "entrypoint: no process named \"$service\" in this image ($entry is missing)" >&2
  exit 64
fi
if [ "${ENTRYPOINT_PRINT:-}" = "1" ]; then
  echo "$entry"
  exit 0
fi
exec node "$entry"
