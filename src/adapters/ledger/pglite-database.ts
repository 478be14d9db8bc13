import type { PGlite, Transaction } from '@electric-sql/pglite' with {
  'resolution-mode': 'import',
};
import { lockDataDir, type DataDirLock } from './data-dir-lock';
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
 * One connection only; PGlite serialises transactions itself. The data directory is locked
 * for as long as it is open: a second process would silently lose its writes.
 */
export class PgliteDatabase implements SqlDatabase {
  readonly kind = 'pglite';
  private readonly direct: SqlClient;

  private constructor(
    private readonly db: PGlite,
    private readonly lock: DataDirLock | undefined,
  ) {
    this.direct = wrap(db);
  }

  /** `dataDir` undefined -> in memory (tests). Throws DataDirLockedError when in use. */
  static async open(dataDir?: string): Promise<PgliteDatabase> {
    const lock = dataDir === undefined ? undefined : lockDataDir(dataDir);
    try {
      // PGlite loads its WebAssembly through a dynamic import, so it is imported lazily
      // (under jest this needs NODE_OPTIONS=--experimental-vm-modules).
      const { PGlite } = await import('@electric-sql/pglite');
      const db = await PGlite.create(dataDir);
      return new PgliteDatabase(db, lock);
    } catch (error) {
      lock?.release();
      throw error;
    }
  }

  query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    return this.direct.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.direct.exec(sql);
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1 FROM schema_migrations LIMIT 1');
  }

  transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(wrap(tx)));
  }

  async close(): Promise<void> {
    try {
      if (!this.db.closed) await this.db.close();
    } finally {
      this.lock?.release();
    }
  }
}
