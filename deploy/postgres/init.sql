-- Databases and roles for the grievance triage service and its MLflow server, least privilege.
-- Run once, as a superuser, on PostgreSQL 13 or later:
--   psql -v ON_ERROR_STOP=1 \
--        -v triage_owner_password="$(cat triage_owner.pw)" -v triage_app_password="$(cat triage_app.pw)" \
--        -v triage_reader_password="$(cat triage_reader.pw)" -v mlflow_password="$(cat mlflow.pw)" \
--        -f deploy/postgres/init.sql
--
-- Roles (none is a superuser, none may create databases or roles):
--   triage_owner   owns the audit store's schema; runs the migrations
--                  (`python -m store.migrate --url postgresql+psycopg://triage_owner:...@.../triage upgrade head`)
--   triage_app     the API replicas (TRIAGE_DATABASE_URL): read, and append only. No UPDATE, DELETE,
--                  TRUNCATE or DDL: the store is append-only by construction, and the database now says so
--                  too. At start-up a replica checks the schema is at head (it reads alembic_version and
--                  takes an advisory lock, neither needs more); a pending migration then fails its start
--                  with "permission denied", so migrate as triage_owner before rolling out a new release.
--   triage_reader  read-only: `triage export-reviews --database-url ...`, `triage promote --reviews ...`,
--                  reports and analysts.
--   mlflow         owns the `mlflow` database only; the MLflow server creates and migrates its tables.

CREATE ROLE triage_owner  LOGIN PASSWORD :'triage_owner_password'  NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE triage_app    LOGIN PASSWORD :'triage_app_password'    NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE triage_reader LOGIN PASSWORD :'triage_reader_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE mlflow        LOGIN PASSWORD :'mlflow_password'        NOSUPERUSER NOCREATEDB NOCREATEROLE;

-- Each replica keeps a small pool (SQLAlchemy's default: 5 + 10 overflow) plus the spool's probe: cap the
-- replicas' role so a runaway cannot take every connection the server has (16 per replica, 8 replicas).
ALTER ROLE triage_app CONNECTION LIMIT 128;
-- A transaction left open (a crashed client) must not hold a case's advisory lock forever.
ALTER ROLE triage_app SET idle_in_transaction_session_timeout = '60s';

CREATE DATABASE triage OWNER triage_owner ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE mlflow OWNER mlflow ENCODING 'UTF8' TEMPLATE template0;

-- Nobody else may connect (PUBLIC has CONNECT and TEMPORARY on new databases by default).
REVOKE ALL ON DATABASE triage FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
GRANT CONNECT ON DATABASE triage TO triage_app, triage_reader;

\connect triage
-- The tables live in `public`, owned by triage_owner; before PostgreSQL 15 every role could create
-- objects there, so take that away explicitly.
ALTER SCHEMA public OWNER TO triage_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO triage_app, triage_reader;

-- Tables and sequences the migrations create (as triage_owner) from now on ...
ALTER DEFAULT PRIVILEGES FOR ROLE triage_owner IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO triage_app;
ALTER DEFAULT PRIVILEGES FOR ROLE triage_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO triage_app;
ALTER DEFAULT PRIVILEGES FOR ROLE triage_owner IN SCHEMA public GRANT SELECT ON TABLES TO triage_reader;
-- ... and any that already exist (these four GRANTs can be run again by hand after a migration made by
-- another role).
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO triage_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO triage_app;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO triage_reader;

\connect mlflow
ALTER SCHEMA public OWNER TO mlflow;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
