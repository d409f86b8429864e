# Sourced by the ensure-*.sh scripts: installs one Debian/Ubuntu package with apt-get when that is
# possible without a password (root, or passwordless sudo), logging to .run/logs/<name>-install.log.
#
#   apt_install_or_exit PACKAGE LOGNAME DESCRIPTION PROBLEM [apt-get install options...]
#
# Returns when apt-get installed the package, with `apt_install_log` set to the log file. Otherwise
# calls the sourcing script's `explain` with PROBLEM (and why apt-get did not help) and exits 1:
# apt-get cannot run here without a password, or it failed.

apt_install_or_exit() {
  local package=$1 name=$2 description=$3 problem=$4
  shift 4
  local root sudo_cmd=()
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if ! command -v apt-get >/dev/null 2>&1; then
    explain "$problem"
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
      sudo_cmd=(sudo -n)
    else
      explain "$problem"
      exit 1
    fi
  fi
  mkdir -p "$root/.run/logs"
  apt_install_log="$root/.run/logs/$name-install.log"
  echo "Installing $description with apt-get (log: ${apt_install_log#"$root"/}) ..."
  if ! {
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" "$package"
  } >"$apt_install_log" 2>&1; then
    explain "$problem, and 'apt-get install $package' failed (see $apt_install_log)"
    exit 1
  fi
}
