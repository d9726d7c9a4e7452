#!/bin/bash
# farm/mariadb entry point, compatible with the upstream mariadb image's variables.
#
# On an empty datadir: mariadb-install-db, then on a socket-only temporary server
#   - root@localhost gets MARIADB_ROOT_PASSWORD (or _FILE), or no password with
#     MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, or a printed random one with
#     MARIADB_RANDOM_ROOT_PASSWORD;
#   - root@MARIADB_ROOT_HOST (when set, e.g. '%') gets the same password and
#     ALL PRIVILEGES WITH GRANT OPTION (upstream defaults it to '%'; here it
#     must be asked for);
#   - MARIADB_DATABASE, MARIADB_USER and MARIADB_PASSWORD (or _FILE) are created;
#   - /docker-entrypoint-initdb.d/*.sql, *.sql.gz and *.sh run in name order.
# Every MARIADB_X may also be given as MYSQL_X (MARIADB_ wins).
# On a non-empty datadir it just starts. mariadbd always runs as mysql.
set -eo pipefail
shopt -s nullglob

log() { printf '%s [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# file_env VAR [ALIAS]: VAR or VAR_FILE (not both), else ALIAS or ALIAS_FILE.
file_env() {
    local var="$1" alias="${2:-MYSQL_${1#MARIADB_}}" value="" name file
    for name in "$alias" "$var"; do
        file="${name}_FILE"
        if [ -n "${!name:-}" ] && [ -n "${!file:-}" ]; then
            die "both $name and $file are set; use one of them"
        fi
        if [ -n "${!name:-}" ]; then
            value="${!name}"
        elif [ -n "${!file:-}" ]; then
            [ -r "${!file}" ] || die "$file points at ${!file}, which cannot be read"
            value="$(< "${!file}")"
        fi
    done
    export "$var"="$value"
    unset "${var}_FILE" "$alias" "${alias}_FILE"
}

sql_string() {  # a quoted SQL string literal
    local s="${1//\\/\\\\}"
    s="${s//\'/\\\'}"
    printf "'%s'" "$s"
}

sql_ident() {  # a quoted SQL identifier
    printf '`%s`' "${1//\`/\`\`}"
}

conf_get() {  # conf_get KEY mariadbd [args...]: the value the server would use
    local key="$1"
    shift
    # The values table lines start in column 0 with the key; descriptions are indented.
    "$@" --verbose --help 2>/dev/null | awk -v key="$key" 'index($0, key " ") == 1 { print $2; exit }'
}

docker_process_sql() {  # run SQL from stdin (or args) on the temporary server as root
    local database=()
    [ -n "${MARIADB_DATABASE:-}" ] && database=(--database="$MARIADB_DATABASE")
    MYSQL_PWD="${ROOT_PASSWORD:-}" mariadb --no-defaults --socket="$SOCKET" -uroot \
        --protocol=socket "${database[@]}" "$@"
}

if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then
    exec "$@"
fi
for arg in "$@"; do
    case "$arg" in
        --help|--version|-V|'-?') exec "$@" ;;
    esac
done

# Read secrets while still root: a Swarm secret may be readable by root only.
file_env MARIADB_ROOT_PASSWORD
file_env MARIADB_ROOT_HOST
file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_ALLOW_EMPTY_PASSWORD
file_env MARIADB_RANDOM_ROOT_PASSWORD
file_env MARIADB_DATABASE
file_env MARIADB_USER
file_env MARIADB_PASSWORD

DATADIR="$(conf_get datadir "$@")"
DATADIR="${DATADIR%/}"
SOCKET="$(conf_get socket "$@")"
[ -n "$DATADIR" ] && [ -n "$SOCKET" ] || die "cannot read datadir/socket from '$1 --verbose --help'"

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$DATADIR" "$(dirname "$SOCKET")"
    chown mysql:mysql "$(dirname "$SOCKET")"
    find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
    exec setpriv --reuid=mysql --regid=mysql --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -d "$DATADIR/mysql" ]; then
    if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] \
        && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        die "the datadir is empty and no root password option is set: set MARIADB_ROOT_PASSWORD," \
            "MARIADB_ROOT_PASSWORD_FILE, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD"
    fi
    if [ -n "$MARIADB_USER" ] && [ "$MARIADB_USER" = root ]; then
        die "MARIADB_USER=root: root is set up with MARIADB_ROOT_PASSWORD / MARIADB_ROOT_HOST"
    fi

    log "initialising the database in $DATADIR"
    mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
        --skip-test-db --skip-log-bin --expire-logs-days=0 --default-time-zone=SYSTEM \
        --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 \
        "${@:2}" >/dev/null || die "mariadb-install-db failed"

    log "starting a temporary server (socket only)"
    "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --wsrep_on=OFF \
        --expire-logs-days=0 --skip-slave-start --loose-innodb_buffer_pool_load_at_startup=0 &
    temp_pid=$!
    for _ in $(seq 60); do
        if mariadb --no-defaults --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
            break
        fi
        kill -0 "$temp_pid" 2>/dev/null || die "the temporary server exited while starting"
        sleep 1
    done
    mariadb --no-defaults --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1 \
        || die "the temporary server did not start within 60 s"

    ROOT_PASSWORD="$MARIADB_ROOT_PASSWORD"
    if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        ROOT_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
        log "GENERATED ROOT PASSWORD: $ROOT_PASSWORD"
    fi
    pw="$(sql_string "$ROOT_PASSWORD")"
    sql="SET @@SESSION.SQL_LOG_BIN=0;
SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
DROP USER IF EXISTS root@'127.0.0.1', root@'::1', ''@'localhost';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\', \'\'@\'', @@hostname, '\'');
SET PASSWORD FOR 'root'@'localhost' = PASSWORD($pw);"
    if [ -n "$MARIADB_ROOT_HOST" ] && [ "$MARIADB_ROOT_HOST" != localhost ]; then
        host="$(sql_string "$MARIADB_ROOT_HOST")"
        sql+="
CREATE USER 'root'@$host IDENTIFIED BY $pw;
GRANT ALL PRIVILEGES ON *.* TO 'root'@$host WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@$host WITH GRANT OPTION;"
    fi
    # A user with no privileges for healthcheck.sh, so its checks do not fill the
    # log with "access denied" warnings; its password lives in the datadir.
    hc_pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    for hc_host in 127.0.0.1 ::1 localhost; do
        sql+="
CREATE USER 'healthcheck'@'$hc_host' IDENTIFIED BY '$hc_pw';"
    done
    printf '[mariadb-client]\nuser=healthcheck\npassword=%s\n' "$hc_pw" >"$DATADIR/.my-healthcheck.cnf"
    chmod 600 "$DATADIR/.my-healthcheck.cnf"
    if [ -n "$MARIADB_DATABASE" ]; then
        sql+="
CREATE DATABASE IF NOT EXISTS $(sql_ident "$MARIADB_DATABASE");"
    fi
    if [ -n "$MARIADB_USER" ]; then
        user="$(sql_string "$MARIADB_USER")"
        sql+="
CREATE USER $user@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
        if [ -n "$MARIADB_DATABASE" ]; then
            sql+="
GRANT ALL ON $(sql_ident "$MARIADB_DATABASE").* TO $user@'%';"
        fi
    fi
    mariadb --no-defaults --socket="$SOCKET" -uroot <<<"$sql" || die "setting up users failed"

    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) log "running $f"; . "$f" ;;
            *.sql) log "running $f"; docker_process_sql <"$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | docker_process_sql ;;
            *) log "ignoring $f" ;;
        esac
    done

    kill "$temp_pid"
    wait "$temp_pid" || die "the temporary server did not stop cleanly"
    log "initialisation done"
fi

unset MARIADB_ROOT_PASSWORD MARIADB_PASSWORD ROOT_PASSWORD pw sql hc_pw
exec "$@"
