#!/bin/bash
# Entrypoint of the ECS stand-in (a test fixture following ECS's container contract; it
# is not ECS). Runs as root; the application runs as user app (gosu) in /app/ecs with the
# venv /app/env active.
#
#   web        migrate first if ECS_MIGRATE_AUTO=true, else bootstrap; then serve :5000
#   simple     serve :5000 (gunicorn), no migration, no bootstrap
#   combined   web + celery worker + celery beat + smtpd in one container
#   worker     celery -A ecs worker --events -l info
#   beat       celery -A ecs beat -l info (schedule in /app/ecs-cache)
#              (as python3 -m celery: Debian's python3-celery ships no celery command)
#   smtpd      manage.py smtpd -l info (SMTPD_CONFIG['listen_addr'], 0.0.0.0:8025)
#   migrate    scripts/checkdb.py, then manage.py migrate --noinput and manage.py bootstrap
#   run CMD…   CMD as user app in /app/ecs with the venv active
#   anything else is executed as root
set -e

export HOME=/app
export LANG=${LANG:-C.UTF-8}
export PYTHONUNBUFFERED=1
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-ecs.settings}
if [ -f /app/env/bin/activate ]; then
    # shellcheck disable=SC1091
    . /app/env/bin/activate
fi
cd /app/ecs

# as_app CMD…: run CMD as user app (as it is when not root).
as_app() {
    if [ "$(id -u)" = 0 ]; then gosu app "$@"; else "$@"; fi
}
exec_app() {
    if [ "$(id -u)" = 0 ]; then exec gosu app "$@"; else exec "$@"; fi
}

# The volumes of the contract may come in owned by root: the top directories go to app.
prepare_dirs() {
    [ "$(id -u)" = 0 ] || return 0
    for d in /app/ecs-ca /app/ecs-storage-vault /app/ecs-gpg /app/ecs-cache; do
        mkdir -p "$d"
        chown app:app "$d"
    done
    chmod 0700 /app/ecs-gpg
}

prepare_database() {
    local rc=0
    as_app python3 scripts/checkdb.py || rc=$?
    case $rc in
        0) echo "entrypoint: database has Django migrations: migrating" ;;
        2) echo "entrypoint: empty database: creating the schema" ;;
        1) echo "entrypoint: old South migrations: the stand-in cannot upgrade them" >&2; exit 1 ;;
        8) echo "entrypoint: database missing (the appliance creates it)" >&2; exit 8 ;;
        *) echo "entrypoint: database check failed (checkdb exit $rc)" >&2; exit "$rc" ;;
    esac
    as_app python3 manage.py migrate --noinput
    as_app python3 manage.py bootstrap
}

web_server() {
    exec_app python3 -m gunicorn --bind 0.0.0.0:5000 --workers "${ECS_WEB_WORKERS:-2}" \
        --access-logfile - --error-logfile - ecs.wsgi:application
}

cmd=${1:-simple}
[ $# -gt 0 ] && shift
case $cmd in
    web)
        prepare_dirs
        if [ "${ECS_MIGRATE_AUTO:-false}" = true ]; then prepare_database; else as_app python3 manage.py bootstrap; fi
        web_server
        ;;
    simple)
        prepare_dirs
        web_server
        ;;
    combined)
        prepare_dirs
        if [ "${ECS_MIGRATE_AUTO:-false}" = true ]; then prepare_database; else as_app python3 manage.py bootstrap; fi
        # Each one is the background job itself (exec), so the trap reaches the process.
        pids=()
        web_server & pids+=($!)
        exec_app python3 -m celery -A ecs worker --events -l info & pids+=($!)
        exec_app python3 -m celery -A ecs beat -l info -s /app/ecs-cache/celerybeat-schedule & pids+=($!)
        exec_app python3 manage.py smtpd -l info & pids+=($!)
        trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
        # The container ends when any of the four does.
        rc=0; wait -n || rc=$?
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait || true
        exit "$rc"
        ;;
    worker)
        prepare_dirs
        exec_app python3 -m celery -A ecs worker --events -l info "$@"
        ;;
    beat)
        prepare_dirs
        exec_app python3 -m celery -A ecs beat -l info -s /app/ecs-cache/celerybeat-schedule "$@"
        ;;
    smtpd)
        exec_app python3 manage.py smtpd -l info "$@"
        ;;
    migrate)
        prepare_dirs
        prepare_database
        ;;
    run)
        [ $# -gt 0 ] || { echo "entrypoint: run needs a command (e.g. run ./manage.py shell)" >&2; exit 2; }
        exec_app "$@"
        ;;
    *)
        exec "$cmd" "$@"
        ;;
esac
