# Sourced by the ensure-*.sh scripts: installs one Debian/Ubuntu package with apt-get when that is
# possible without a password (root, or passwordless sudo), logging to .run/logs/<name>-install.log.
#
#   apt_install PACKAGE LOGNAME DESCRIPTION [apt-get install options...]
#
# Returns 0 when apt-get installed the package; 2 when apt-get cannot run here without a password
# (nothing was tried); 1 when apt-get failed. Sets `apt_install_log` to the log file.

apt_install() {
  local package=$1 name=$2 description=$3
  shift 3
  local root sudo_cmd=()
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  command -v apt-get >/dev/null 2>&1 || return 2
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
      sudo_cmd=(sudo -n)
    else
      return 2
    fi
  fi
  mkdir -p "$root/.run/logs"
  apt_install_log="$root/.run/logs/$name-install.log"
  echo "Installing $description with apt-get (log: ${apt_install_log#"$root"/}) ..."
  {
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" "$package"
  } >"$apt_install_log" 2>&1 || return 1
}
