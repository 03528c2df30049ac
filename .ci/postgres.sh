#!/usr/bin/env bash
# PostgreSQL for the tests of `retr --db` (tests/test_store_postgres.py), on a Debian 12 machine, as root.
# Installs Debian's server if missing, runs it on 127.0.0.1, creates role retr (password retr) and
# database retr_test owned by it, and exports RETR_TEST_PG. Idempotent and quick on a second run.
#
# Source it so that the export reaches the tests:   . .ci/postgres.sh
# (run as a script, it only prints the export line to eval).
_retr_pg_setup() {
  local ver port status conf
  export DEBIAN_FRONTEND=noninteractive
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
    pg_createcluster "$ver" main >/dev/null
  fi
  conf=/etc/postgresql/$ver/main/conf.d/retr-ci.conf
  if [ "$(cat "$conf" 2>/dev/null)" != "listen_addresses = '127.0.0.1'" ]; then
    mkdir -p "$(dirname "$conf")"
    echo "listen_addresses = '127.0.0.1'" > "$conf"
    if pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -qx online; then
      pg_ctlcluster "$ver" main restart
    fi
  fi
  port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
  status=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}')
  [ "$status" = online ] || pg_ctlcluster "$ver" main start
  pg_isready -q -h 127.0.0.1 -p "$port" -t 30
  (cd / && runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAtX -c \
    "DO \$\$ BEGIN
       IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'retr') THEN ALTER ROLE retr LOGIN PASSWORD 'retr';
       ELSE CREATE ROLE retr LOGIN PASSWORD 'retr'; END IF; END \$\$;")
  if [ "$(cd / && runuser -u postgres -- psql -p "$port" -qAtX -c "SELECT 1 FROM pg_database WHERE datname = 'retr_test'")" != 1 ]; then
    (cd / && runuser -u postgres -- createdb -p "$port" -O retr -E UTF8 -T template0 retr_test)
  fi
  export RETR_TEST_PG="postgresql+psycopg://retr:retr@127.0.0.1:${port}/retr_test"
}
_retr_pg_setup
unset -f _retr_pg_setup
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "export RETR_TEST_PG=$RETR_TEST_PG"
fi
