import { Pool, type PoolClient, type PoolConfig } from 'pg';
import type { SqlClient, SqlDatabase, SqlResult } from './sql';

function wrap(client: Pool | PoolClient): SqlClient {
  return {
    async query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
      const result = await client.query(sql, params as unknown[] | undefined);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
    },
    async exec(sql: string): Promise<void> {
      // Without parameters pg uses the simple protocol, which accepts several statements.
      await client.query(sql);
    },
  };
}

/** PostgreSQL through a `pg` pool: the production ledger. */
export class PgDatabase implements SqlDatabase {
  readonly kind = 'postgres';
  private readonly pool: Pool;
  private readonly direct: SqlClient;

  constructor(config: PoolConfig) {
    this.pool = new Pool(config);
    // An idle client that loses its connection emits 'error'; without a listener the
    // process would crash. The next checkout gets a fresh connection.
    this.pool.on('error', () => undefined);
    this.direct = wrap(this.pool);
  }

  query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    return this.direct.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.direct.exec(sql);
  }

  async transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(wrap(client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: discard it.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
