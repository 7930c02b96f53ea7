#!/usr/bin/env bash
# The fault drills (docs/faults.md) against a throwaway PostgreSQL cluster and a throwaway Redis of their own, on free
# ports, so restarting them disturbs nothing else on the machine; both are stopped and removed afterwards.
#   bash deploy/fault-drill.sh [SCENARIO...]     (from the project folder, with the project's Python on PATH or
#                                                  PYTHON=/path/to/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
pg_bin=/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -n | tail -n1)/bin

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

dir=$(mktemp -d -t musubi-faults-XXXXXX)
pg_port=$(free_port)
redis_port=$(free_port)
# PostgreSQL refuses to run as root: as root, its commands run as the postgres user, which must own the folder.
as_pg=""
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as_pg="runuser -u postgres --"
fi
pg_ctl="$pg_bin/pg_ctl -D $dir/pg -o '-p $pg_port -k $dir -c listen_addresses=127.0.0.1' -l $dir/pg.log"
redis_start="redis-server --daemonize yes --bind 127.0.0.1 --port $redis_port --save '' --appendonly no --dir $dir --logfile $dir/redis.log"

cleanup() {
  $as_pg sh -c "$pg_ctl -m immediate stop" >/dev/null 2>&1 || true
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

$as_pg "$pg_bin/initdb" -D "$dir/pg" -U postgres --auth=trust >/dev/null
$as_pg sh -c "$pg_ctl -w start" >/dev/null
sh -c "$redis_start"
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

export MUSUBI_FAULT_DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
export MUSUBI_FAULT_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export MUSUBI_FAULT_PG_RESTART="$as_pg sh -c \"$pg_ctl -w restart\""
export MUSUBI_FAULT_REDIS_RESTART="redis-cli -p $redis_port shutdown nosave; $redis_start"
"$python" cli.py faults "$@" --yes-restart-servers
