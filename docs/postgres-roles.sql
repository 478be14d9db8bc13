-- PostgreSQL roles for the facemap vault: a migration role that owns the ledger's tables
-- (npm run migrate, DATABASE_MIGRATION_URL) and a runtime role the vault runs as
-- (DATABASE_URL) that may only read and write rows. The runtime role cannot drop or alter
-- a table or trigger, TRUNCATE anything, or UPDATE or DELETE an audit event.
--
-- Run as a superuser or the database owner, connected to the vault's own database:
--
--   psql "postgres://admin@db.example/facemap" -v ON_ERROR_STOP=1 \
--     -v migration_role=facemap_migrator -v runtime_role=facemap_app \
--     -f docs/postgres-roles.sql
--
-- then give both roles a password (psql: \password facemap_migrator) and configure
--   DATABASE_MIGRATION_URL=postgres://facemap_migrator:...@db.example/facemap
--   DATABASE_URL=postgres://facemap_app:...@db.example/facemap
-- and run `npm run migrate` (or start the vault with both set: it migrates as the
-- migration role, then runs as the runtime role).
--
-- It can be run again at any time (it is idempotent), and on a ledger that was migrated
-- before the roles were split: it hands the existing tables to the migration role.

-- The roles, unless they exist.
SELECT format('CREATE ROLE %I LOGIN', :'migration_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'migration_role') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'runtime_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'runtime_role') \gexec

-- Only the migration role creates objects in the schema (PUBLIC may before PostgreSQL 15).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"migration_role";
GRANT USAGE ON SCHEMA public TO :"runtime_role";

-- An existing ledger: its tables and functions go to the migration role (owned sequences
-- follow their tables).
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'migration_role')
  FROM pg_tables
 WHERE schemaname = 'public' AND tableowner <> :'migration_role' \gexec
SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, :'migration_role')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> :'migration_role' \gexec

-- Tables the migration role creates from now on: rows only. The migrations revoke what
-- the runtime role must not do to append-only tables (audit_events) when they create them.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migration_role" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migration_role" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"runtime_role";

-- The tables that exist already: the same, except the append-only trail (insert and read
-- only) and the migration versions (read only).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"runtime_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"runtime_role";
SELECT format('REVOKE UPDATE, DELETE, TRUNCATE ON public.audit_events FROM %I', :'runtime_role')
 WHERE to_regclass('public.audit_events') IS NOT NULL \gexec
SELECT format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.schema_migrations FROM %I',
              :'runtime_role')
 WHERE to_regclass('public.schema_migrations') IS NOT NULL \gexec
