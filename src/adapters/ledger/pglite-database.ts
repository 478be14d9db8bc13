import type { PGlite, Transaction } from '@electric-sql/pglite' with {
  'resolution-mode': 'import',
};
import type { SqlClient, SqlDatabase, SqlResult } from './sql';

function wrap(db: PGlite | Transaction): SqlClient {
  return {
    async query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
      const result = await db.query<R>(sql, params as unknown[] | undefined);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await db.exec(sql);
    },
  };
}

/**
 * Embedded PostgreSQL (WebAssembly) in a data directory: the zero-configuration ledger.
 * One connection only; PGlite serialises transactions itself.
 */
export class PgliteDatabase implements SqlDatabase {
  readonly kind = 'pglite';
  private readonly direct: SqlClient;

  private constructor(private readonly db: PGlite) {
    this.direct = wrap(db);
  }

  /** `dataDir` undefined -> in memory (tests). */
  static async open(dataDir?: string): Promise<PgliteDatabase> {
    // PGlite loads its WebAssembly through a dynamic import, so it is imported lazily
    // (under jest this needs NODE_OPTIONS=--experimental-vm-modules).
    const { PGlite } = await import('@electric-sql/pglite');
    const db = await PGlite.create(dataDir);
    return new PgliteDatabase(db);
  }

  query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    return this.direct.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.direct.exec(sql);
  }

  transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(wrap(tx)));
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}
