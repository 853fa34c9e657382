#!/bin/sh
# A restore drill for the ledger's Litestream replica: replicate, kill,
# restore, check. It proves that a replica left behind by a lost machine
# restores to a ledger that passes every check, and it times the restore
# (your recovery time). See docs/operations.md, "Replication with Litestream".
#
#   deploy/litestream-drill.sh [-config FILE] [-o RESTORED.db] [-wait SECONDS|stdin] DB
#
#   -config   the Litestream config (default /etc/litestream.yml). It must
#             name DB and enable the control socket, as deploy/litestream.yml does.
#   -o        where the restored copy goes; it must not exist (default: a
#             new temporary directory).
#   -wait     how long to replicate before the kill: seconds (default 10), or
#             "stdin" to wait for a line on standard input (a test, or you,
#             decide when).
#
# The binaries: $LITESTREAM (default litestream) and $COUPON_LEDGER (default
# coupon-ledger).
#
# The drill runs its own replicator, so it refuses to start while another
# one listens on the config's socket: run it on a staging box, or with a copy
# of the config whose replica is a scratch directory (or bucket path) and
# whose socket is its own.
#
# Steps:
#   1. replicate  litestream replicate -config FILE, in the background;
#   2. sync       after the wait, `litestream sync -wait`: every commit made
#                 before this moment is in the replica;
#   3. kill       kill -9 the replicator, as losing the machine would;
#   4. restore    litestream restore -o RESTORED.db DB, timed;
#   5. check      coupon-ledger check RESTORED.db: every ledger invariant.
# It exits 0 only when every step succeeded, and prints the restored path.

set -eu

LITESTREAM=${LITESTREAM:-litestream}
COUPON_LEDGER=${COUPON_LEDGER:-coupon-ledger}
config=/etc/litestream.yml
out=
wait_for=10

say() { printf 'drill: %s\n' "$*"; }
fail() { printf 'drill: FAILED: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 1 ]; do
    case $1 in
        -config) config=$2; shift 2 ;;
        -o) out=$2; shift 2 ;;
        -wait) wait_for=$2; shift 2 ;;
        *) fail "unknown option $1 (usage: $0 [-config FILE] [-o RESTORED.db] [-wait SECONDS|stdin] DB)" ;;
    esac
done
[ $# -eq 1 ] || fail "usage: $0 [-config FILE] [-o RESTORED.db] [-wait SECONDS|stdin] DB"
db=$1

[ -f "$config" ] || fail "no config file $config"
[ -f "$db" ] || fail "no database $db"
case $wait_for in
    stdin) ;;
    ''|*[!0-9]*) fail "-wait takes a number of seconds or stdin, not $wait_for" ;;
esac

# The control socket's path: the `path:` under the top-level `socket:` section.
socket=$(awk '/^socket:/ { in_socket = 1; next }
              /^[^ #]/ { in_socket = 0 }
              in_socket && $1 == "path:" { print $2; exit }' "$config")
[ -n "$socket" ] || fail "$config has no socket: section with a path; the drill needs it for litestream sync (see deploy/litestream.yml)"
[ -e "$socket" ] && fail "$socket exists: another replicator may be running on this config; stop it or use a copy of the config with its own socket and replica"

if [ -z "$out" ]; then
    out=$(mktemp -d)/ledger.db
fi
[ -e "$out" ] && fail "$out exists; the restore never overwrites"

# 1. replicate
"$LITESTREAM" replicate -config "$config" &
replicator=$!
trap 'kill -9 "$replicator" 2>/dev/null || true' EXIT
say "replicating $db (litestream pid $replicator)"

tries=0
until [ -S "$socket" ]; do
    tries=$((tries + 1))
    kill -0 "$replicator" 2>/dev/null || fail "litestream replicate exited"
    [ "$tries" -le 300 ] || fail "no control socket $socket after 30 s"
    sleep 0.1
done

if [ "$wait_for" = stdin ]; then
    say "waiting for a line on standard input before the kill"
    read -r _ || true
else
    say "replicating for $wait_for s before the kill"
    sleep "$wait_for"
fi

# 2. sync: what was committed before now is in the replica once this returns.
synced=$("$LITESTREAM" sync -wait -json -socket "$socket" "$db") ||
    fail "litestream sync did not finish"
say "synced: $(printf '%s' "$synced" | tr -d ' \n')"

# 3. kill
kill -9 "$replicator"
wait "$replicator" 2>/dev/null || true
trap - EXIT
rm -f "$socket"
say "killed the replicator (kill -9)"

# 4. restore
started=$(date +%s)
"$LITESTREAM" restore -config "$config" -o "$out" "$db" || fail "litestream restore failed"
say "restored to $out in $(( $(date +%s) - started )) s"

# 5. check
"$COUPON_LEDGER" check "$out" || fail "coupon-ledger check refused $out"
say "ok: $out"
