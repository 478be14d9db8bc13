import { DatabaseError, Pool, type PoolClient, type PoolConfig, type QueryConfig } from 'pg';
import { DependencyError, VaultError } from '../../core/errors';
import type { SqlClient, SqlDatabase, SqlResult } from './sql';

/**
 * Whether `error` means the database is unreachable or stopped answering in time, rather
 * than a fault in the statement: those become DependencyError (the HTTP layer answers 503,
 * so Jumio retries a callback). SQLSTATE classes 08 connection, 53 resources, 57 operator
 * intervention (statement timeout, shutdown), 58 system; 25P03 idle-in-transaction timeout.
 * Errors without a SQLSTATE are the driver's own: connect and read timeouts, lost sockets.
 */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof VaultError || !(error instanceof Error)) return false;
  if (error instanceof DatabaseError) {
    const code = error.code ?? '';
    return ['08', '53', '57', '58'].includes(code.slice(0, 2)) || code === '25P03';
  }
  const code = (error as { code?: unknown }).code;
  return (
    (typeof code === 'string' && /^E[A-Z]+$/.test(code)) ||
    /timeout|terminated|connection/i.test(error.message)
  );
}

function reasonOf(error: Error): string {
  if (error instanceof DatabaseError) return `SQLSTATE ${error.code ?? 'unknown'}`;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : error.message.slice(0, 100);
}

function unavailable(error: unknown): unknown {
  if (!isUnavailable(error)) return error;
  return new DependencyError('ledger', `PostgreSQL unavailable (${reasonOf(error as Error)})`, {
    cause: error,
  });
}

function wrap(client: Pool | PoolClient): SqlClient {
  return {
    async query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
      try {
        const result = await client.query(sql, params as unknown[] | undefined);
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
      } catch (error) {
        throw unavailable(error);
      }
    },
    async exec(sql: string): Promise<void> {
      // Without parameters pg uses the simple protocol, which accepts several statements.
      try {
        await client.query(sql);
      } catch (error) {
        throw unavailable(error);
      }
    },
  };
}

export interface PgDatabaseOptions extends PoolConfig {
  /** Bound on the readiness probe's query, so a hung server does not hold its slot. */
  pingTimeoutMs?: number;
}

/** PostgreSQL through a `pg` pool: the production ledger. */
export class PgDatabase implements SqlDatabase {
  readonly kind = 'postgres';
  private readonly pool: Pool;
  private readonly direct: SqlClient;
  private readonly pingTimeoutMs: number;

  constructor({ pingTimeoutMs = 2_000, ...config }: PgDatabaseOptions) {
    this.pool = new Pool(config);
    this.pingTimeoutMs = pingTimeoutMs;
    // An idle client that loses its connection emits 'error'; without a listener the
    // process would crash. The next checkout gets a fresh connection.
    this.pool.on('error', () => undefined);
    // A checked-out client has no pool listener: one that loses its connection inside a
    // transaction, or between two of its statements, emits 'error' too, and that would
    // crash the process. Its pending and later queries fail, and the transaction discards it.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
    this.direct = wrap(this.pool);
  }

  query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    return this.direct.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.direct.exec(sql);
  }

  async ping(): Promise<void> {
    // A client-side read timeout: on expiry the pool discards the connection, freeing the
    // slot (the wait for a slot itself is bounded by connectionTimeoutMillis).
    // pg reads query_timeout from the query config; its typings do not declare it.
    const probe = {
      text: 'SELECT 1 FROM schema_migrations LIMIT 1',
      query_timeout: this.pingTimeoutMs,
    };
    await this.pool.query(probe as QueryConfig).catch((error: unknown) => {
      throw unavailable(error);
    });
  }

  async transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect().catch((error: unknown) => {
      throw unavailable(error);
    });
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(wrap(client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      const lost =
        isUnavailable(error) ||
        (error instanceof DependencyError &&
          error.dependency === 'ledger' &&
          isUnavailable(error.cause));
      if (lost) {
        // A lost or unanswering connection: a ROLLBACK would wait as long again. The
        // server rolls back when the connection is dropped.
        broken = true;
      } else {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
      }
      throw unavailable(error);
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: discard it.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
