#!/bin/sh
# The entrypoint of supapool's local PostgreSQL image. It speaks the
# official postgres image's language, so that tests written for one run
# on the other:
#   POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres),
#   POSTGRES_DB (default: the user), POSTGRES_INITDB_ARGS,
#   /docker-entrypoint-initdb.d/*.sh and *.sql run once on a new data
#   directory, extra arguments are postgres arguments (-c key=value), and
#   "database system is ready to accept connections" is logged twice on
#   first start (the init server, then the real one), once after.
# Passwords are SCRAM-SHA-256 over TCP; the Unix socket trusts local users.
# max_connections is 60 (Supabase Free) unless -c max_connections says
# otherwise.
set -eu

if [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "error: POSTGRES_PASSWORD is not set; the database is uninitialized and needs a superuser password" >&2
		exit 1
	fi
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}
	pwfile=$(mktemp)
	trap 'rm -f "$pwfile"' EXIT
	printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list
	initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C ${POSTGRES_INITDB_ARGS:-}
	rm -f "$pwfile"
	trap - EXIT
	printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
	# As the official image: listen on every address of the container. As
	# Supabase Free: 60 connections. Both yield to -c arguments.
	printf "\nlisten_addresses = '*'\nmax_connections = 60\n" >> "$PGDATA/postgresql.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start
	psql="psql -v ON_ERROR_STOP=1 --no-psqlrc --username=$user -h /var/run/postgresql"
	if [ "$db" != postgres ]; then
		$psql --dbname=postgres -c "CREATE DATABASE \"$db\""
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			# As the official image: run executable scripts, source the rest.
			echo "running $f"
			if [ -x "$f" ]; then "$f"; else . "$f"; fi
			;;
		*.sql) echo "running $f"; $psql --dbname="$db" -f "$f" ;;
		*.sql.gz) echo "running $f"; gunzip -c "$f" | $psql --dbname="$db" ;;
		*) [ -e "$f" ] && echo "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
