#!/bin/sh
# docker-compose's PostgreSQL, first start only (docker-entrypoint-initdb.d):
# the application's own role, which is not the superuser, and its database.
# `trialog db secure` (the db-secure service) then gives the audit archive to
# a role that cannot log in; the application keeps SELECT and INSERT on it.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v pw="$(cat /run/secrets/trialog_db_password)" <<'SQL'
CREATE ROLE trialog LOGIN PASSWORD :'pw';
CREATE DATABASE trialog OWNER trialog;
SQL
