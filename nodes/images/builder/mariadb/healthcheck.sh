#!/bin/bash
# healthcheck.sh --connect
# Succeeds when the server accepts TCP connections on 127.0.0.1 (MARIADB_PORT or
# 3306), like the upstream image's --connect check: an "access denied" answer
# still proves the server is up, so no credentials are needed. While the entry
# point initialises the datadir the server has networking off, so this fails.
set -uo pipefail

usage() { echo "usage: healthcheck.sh --connect" >&2; exit 2; }
[ "$#" -gt 0 ] || usage
for arg in "$@"; do
    case "$arg" in
        --connect) ;;
        --su-mysql|--su=*) ;;  # accepted for compatibility; nothing to drop here
        *) echo "healthcheck.sh: unsupported option $arg" >&2; usage ;;
    esac
done

# The entry point leaves credentials of a privilege-less user in the datadir:
# with them the check logs in cleanly; without (a datadir made elsewhere) an
# "access denied" answer is just as good.
credentials=(--no-defaults)
cnf="${MARIADB_DATADIR:-/var/lib/mysql}/.my-healthcheck.cnf"
if [ -r "$cnf" ]; then
    credentials=(--defaults-file="$cnf")
fi
answer=$(mariadb "${credentials[@]}" --protocol=tcp -h 127.0.0.1 -P "${MARIADB_PORT:-3306}" \
    -u healthcheck --connect-timeout=3 -e 'SELECT 1' 2>&1)
status=$?
if [ "$status" -eq 0 ]; then
    exit 0
fi
case "$answer" in
    # Access denied (1045), host not allowed (1130), no database rights (1044).
    *"ERROR 1045"*|*"ERROR 1130"*|*"ERROR 1044"*) exit 0 ;;
esac
echo "healthcheck.sh: server not accepting connections: $answer" >&2
exit 1
