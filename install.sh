#!/bin/sh
# install.sh — sets up bhatti on a Debian-like host from this checkout.
#
# For now (the foundation) it installs the build dependencies and builds
# the binaries; the server setup (config, data dir, images, service, admin
# user) arrives with the daemon. Safe to run again.
set -eu
cd "$(dirname "$0")"
sh scripts/deps.sh
make
echo "built: build/bhatti and build/lohar"
