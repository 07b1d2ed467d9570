#!/bin/sh
# check-layers.sh — the layering rules of docs/architecture.md ("Layers"),
# checked on the sources and the built objects; TAP output for tests/run.sh.
#
#   1. includes: shared/ sees only shared/; agent/, daemon/ and client/ see
#      shared/ and themselves; cli/ and tui/ see shared/, client/ and
#      themselves; cli/ sees the daemon only through "../daemon/local.h"
#      (in cli/main.c) and the TUI only through "../tui/tui.h" (in
#      cli/cmd-tui.c). The
#      Makefile's per-directory -I flags enforce the same at compile time;
#      this also catches relative includes.
#   2. the API handlers (daemon/api*.c, http.c, routes.c, listen.c) speak
#      HTTP and JSON only: nothing they include, directly or not, is the
#      agent protocol, the agent client or the engine.
#   3. no function prefix is exported by two modules (a module is a header
#      and the .c files that define what it declares): e.g. conn_* must
#      not exist in the agent and in the CLI.
#
# Usage: tests/check-layers.sh (from the tree's top; BUILD: the build dir)
set -u
build=${BUILD:-build}
n=0
fail=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; printf '%s\n' "$2" | sed 's/^/# /'; }

echo "1..3"

# ---- 1. includes ----
bad=""
for f in shared/*.[ch] agent/*.[ch] daemon/*.[ch] client/*.[ch] cli/*.[ch] tui/*.[ch]; do
	dir=${f%%/*}
	case $dir in
	shared) allowed="shared" ;;
	agent|daemon|client) allowed="$dir shared" ;;
	cli) allowed="cli client shared" ;;
	tui) allowed="tui client shared" ;;
	esac
	for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
		if [ "$inc" = "../daemon/local.h" ] && [ "$f" = "cli/main.c" ]; then
			continue
		fi
		if [ "$inc" = "../tui/tui.h" ] && [ "$f" = "cli/cmd-tui.c" ]; then
			continue
		fi
		case $inc in
		*/*) bad="$bad
$f: includes \"$inc\" (a path: only cli/main.c's ../daemon/local.h and cli/cmd-tui.c's ../tui/tui.h may)"; continue ;;
		esac
		found=""
		for d in $allowed; do
			[ -f "$d/$inc" ] && found=$d && break
		done
		if [ -z "$found" ]; then
			where=$(ls -d */"$inc" 2>/dev/null | head -n 1)
			bad="$bad
$f: includes \"$inc\" (${where:-not found}), outside what $dir/ may see ($allowed)"
		fi
	done
done
if [ -z "$bad" ]; then ok "includes stay within their layers"; else notok "includes" "$bad"; fi

# ---- 2. the API handlers do not see the protocol, the agent or the engine ----
bad=""
for f in daemon/api*.c daemon/http.c daemon/routes.c daemon/listen.c; do
	deps=$(gcc -MM -D_GNU_SOURCE -Ishared -Idaemon "$f" 2>&1) || { bad="$bad
$f: $deps"; continue; }
	for h in proto.h agent-client.h engine.h engine-internal.h qemu.h fileops.h; do
		if printf '%s\n' "$deps" | tr ' \\' '\n\n' | grep -q "/$h\$\|^$h\$"; then
			bad="$bad
$f sees $h"
		fi
	done
done
if [ -z "$bad" ]; then ok "the API handlers see HTTP and JSON, not the protocol or the engine"; else notok "API handlers" "$bad"; fi

# ---- 3. one module per exported prefix ----
# The header that declares a symbol (a line of code, not a comment, naming
# it before '(', '[', ';' or ',') names its module; X-internal.h is X.h's.
tmp=$(mktemp)
decls=$(mktemp)
for h in shared/*.h agent/*.h daemon/*.h client/*.h cli/*.h tui/*.h; do
	grep -vE '^[[:space:]]*(/\*|\*)' "$h" | grep -oE '[A-Za-z_][A-Za-z0-9_]* *[(;,[]' |
		sed 's/ *[(;,[]$//' | sort -u | sed "s|\$| $(printf '%s' "$h" | sed 's/-internal\.h$/.h/')|"
done >"$decls"
for src in shared/*.c agent/*.c daemon/*.c client/*.c cli/*.c tui/*.c; do
	obj="$build/host/${src%.c}.o"
	[ -f "$obj" ] || continue
	# (names from __ are the compiler's: ASan marks each global with __odr_asan.NAME)
	nm -g --defined-only "$obj" | awk -v src="$src" '$2 ~ /^[TDBRC]$/ && $3 != "main" && $3 !~ /^__/ { print $3, src }'
done | awk 'NR == FNR { if (!($1 SUBSEP substr($2, 1, index($2, "/"))  in h)) h[$1, substr($2, 1, index($2, "/"))] = $2; next }
	{ dir = substr($2, 1, index($2, "/")); m = (($1, dir) in h) ? h[$1, dir] : $2
	  p = $1; sub(/_.*/, "", p); print p, m, $1 }' "$decls" - | sort -u >"$tmp"
rm -f "$decls"
dups=$(awk '{ print $1, $2 }' "$tmp" | sort -u | awk '{ c[$1]++; m[$1] = m[$1] " " $2 }
	END { for (p in c) if (c[p] > 1) print p "_ in" m[p] }' | sort)
if [ -z "$dups" ]; then
	ok "each exported prefix belongs to one module"
else
	detail=$(printf '%s\n' "$dups" | while read -r p rest; do
		echo "$p $rest: $(awk -v p="${p%_}" '$1 == p { printf "%s ", $3 }' "$tmp")"
	done)
	notok "prefixes exported by two modules" "$detail"
fi
rm -f "$tmp"
exit $fail
