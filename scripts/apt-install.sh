#!/usr/bin/env bash
# Installs Debian packages for the tests and validators:
#   scripts/apt-install.sh PACKAGE...
# One apt at a time: CI installs test dependencies in the background while
# the validators install theirs, and two apt-gets at once fail on dpkg's
# lock. Not root: says what to install and fails.
set -euo pipefail
[ $# -gt 0 ] || { echo "apt-install.sh: name the packages" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then
  echo "apt-install.sh: not root; install these yourself: apt-get install $*" >&2
  exit 1
fi
echo "apt-install.sh: installing $*" >&2
exec 9>/tmp/testexec-apt.lock
flock 9
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
