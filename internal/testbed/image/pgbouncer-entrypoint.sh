#!/bin/sh
# The entrypoint of supapool's local PgBouncer image. It speaks the
# environment language of the community image edoburu/pgbouncer, so tests
# written for one run on the other. When /etc/pgbouncer/pgbouncer.ini does
# not exist it is written from:
#   DB_HOST (required), DB_PORT (5432), DB_NAME (*: every database),
#   DB_USER and DB_PASSWORD (added to the auth file unless it names the
#   user already), LISTEN_ADDR (0.0.0.0), LISTEN_PORT (5432),
#   AUTH_TYPE (md5), AUTH_FILE (/etc/pgbouncer/userlist.txt), POOL_MODE,
#   DEFAULT_POOL_SIZE, MAX_CLIENT_CONN, MAX_DB_CONNECTIONS, ADMIN_USERS
#   (postgres), STATS_USERS, SERVER_RESET_QUERY, SERVER_LOGIN_RETRY,
#   SERVER_LIFETIME, SERVER_IDLE_TIMEOUT, IGNORE_STARTUP_PARAMETERS
#   (extra_float_digits), MAX_PREPARED_STATEMENTS, LOG_CONNECTIONS,
#   LOG_DISCONNECTIONS, VERBOSE.
# Unlike edoburu's DATABASE_URL, only the DB_* variables are read here, so
# a password needs no URL escaping. An existing configuration is kept, so a
# restarted container keeps the file a test may have edited.
set -eu

conf=/etc/pgbouncer/pgbouncer.ini
auth=${AUTH_FILE:-/etc/pgbouncer/userlist.txt}
[ -e "$auth" ] || : > "$auth"

if [ -n "${DB_USER:-}" ] && [ -n "${DB_PASSWORD:-}" ] && ! grep -q "^\"$DB_USER\"" "$auth"; then
	case "${AUTH_TYPE:-md5}" in
	plain | scram-sha-256) pass=$DB_PASSWORD ;;
	*) pass="md5$(printf '%s%s' "$DB_PASSWORD" "$DB_USER" | md5sum | cut -d' ' -f1)" ;;
	esac
	printf '"%s" "%s"\n' "$DB_USER" "$pass" >> "$auth"
fi

opt() { # opt NAME VALUE: one line when VALUE is set
	if [ -n "$2" ]; then printf '%s = %s\n' "$1" "$2"; fi
}

if [ ! -f "$conf" ]; then
	: "${DB_HOST:?DB_HOST must name the PostgreSQL host}"
	{
		echo "[databases]"
		echo "${DB_NAME:-*} = host=$DB_HOST port=${DB_PORT:-5432}"
		echo
		echo "[pgbouncer]"
		opt listen_addr "${LISTEN_ADDR:-0.0.0.0}"
		opt listen_port "${LISTEN_PORT:-5432}"
		echo "unix_socket_dir ="
		opt auth_file "$auth"
		opt auth_type "${AUTH_TYPE:-md5}"
		opt pool_mode "${POOL_MODE:-}"
		opt default_pool_size "${DEFAULT_POOL_SIZE:-}"
		opt max_client_conn "${MAX_CLIENT_CONN:-}"
		opt max_db_connections "${MAX_DB_CONNECTIONS:-}"
		opt admin_users "${ADMIN_USERS:-postgres}"
		opt stats_users "${STATS_USERS:-}"
		opt server_reset_query "${SERVER_RESET_QUERY:-}"
		opt server_login_retry "${SERVER_LOGIN_RETRY:-}"
		opt server_lifetime "${SERVER_LIFETIME:-}"
		opt server_idle_timeout "${SERVER_IDLE_TIMEOUT:-}"
		opt ignore_startup_parameters "${IGNORE_STARTUP_PARAMETERS:-extra_float_digits}"
		opt max_prepared_statements "${MAX_PREPARED_STATEMENTS:-}"
		opt log_connections "${LOG_CONNECTIONS:-}"
		opt log_disconnections "${LOG_DISCONNECTIONS:-}"
		opt verbose "${VERBOSE:-}"
	} > "$conf"
fi

exec "$@"
