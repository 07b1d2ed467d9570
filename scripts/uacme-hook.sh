#!/bin/sh
# uacme-hook.sh — the hook that lets uacme (Debian's ACME client) answer
# http-01 challenges through bhatti's public proxy: the proxy serves
# GET /.well-known/acme-challenge/TOKEN on any host from the files this
# script leaves in the daemon's data_dir/acme/http-01/.
#
#   uacme -h /usr/local/lib/bhatti/uacme-hook.sh issue NAME...   (docs/publishing.md)
#
# uacme runs it as: uacme-hook.sh METHOD TYPE IDENT TOKEN AUTH, METHOD
# begin (put the answer up), done or failed (take it down). Other
# challenge types are declined (exit 1), so uacme picks http-01.
# BHATTI_ACME_DIR: where the answers go (default
# /var/lib/bhatti/acme/http-01).
set -eu
dir=${BHATTI_ACME_DIR:-/var/lib/bhatti/acme/http-01}
method=$1 type=$2 token=$4 auth=${5:-}
[ "$type" = http-01 ] || exit 1
case $token in
	*[!A-Za-z0-9_-]* | "") echo "uacme-hook: bad token '$token'" >&2; exit 1 ;;
esac
case $method in
	begin) mkdir -p "$dir"; printf '%s' "$auth" > "$dir/$token.tmp"; mv "$dir/$token.tmp" "$dir/$token" ;;
	done | failed) rm -f "$dir/$token" ;;
	*) exit 1 ;;
esac
