#!/bin/sh
# Runs a command for lib/devtools/supervised-child.ts so that it never outlives the process that
# started it.
#
#   supervise.sh <name> <orphan-cleanup-dir or ""> <grace in tenths of a second> <command> [args...]
#
# - SIGTERM and SIGINT sent to this script are forwarded to the command, and the script waits for
#   the command to end and exits with its status (128 + N when it was killed by signal N). The
#   command starts with SIGINT ignored (as any background command of a shell), so SIGINT only
#   reaches programs that install a handler for it, such as nats-server.
# - Standard input must be a pipe that only the starting process holds. The command gets /dev/null
#   instead; a watchdog reads the pipe, and when it closes (the starting process died, however it
#   died) stops the command: SIGTERM, then SIGKILL after the grace period. The orphan cleanup
#   directory, if given, is then removed.
# - The starting process makes this script a process group leader, so the whole group can be
#   killed at once as a last resort.

name=$1
cleanup_dir=$2
grace=$3
shift 3
: "$name" # shown by ps
exec 3<&0 0</dev/null
"$@" 3<&- &
child=$!
orphaned=0
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT
trap 'orphaned=1' USR1
(
  trap - TERM INT USR1
  while read -r line <&3; do :; done
  kill -USR1 $$ 2>/dev/null
  kill -TERM "$child" 2>/dev/null || exit 0
  i=0
  while kill -0 "$child" 2>/dev/null && [ "$i" -lt "$grace" ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$child" 2>/dev/null
) &
watchdog=$!
exec 3<&-
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
kill "$watchdog" 2>/dev/null
if [ "$orphaned" = 1 ] && [ -n "$cleanup_dir" ]; then rm -rf -- "$cleanup_dir"; fi
exit "$status"
