/**
 * The small SQL surface both ledger drivers (pg and PGlite) implement, so that one set of
 * SQL statements and migrations serves both.
 */
export interface SqlResult<R> {
  rows: R[];
  rowCount: number;
}

export interface SqlClient {
  /** One statement with positional parameters ($1, $2, ...). */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<SqlResult<R>>;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface SqlDatabase extends SqlClient {
  readonly kind: 'postgres' | 'pglite';
  /** BEGIN ... COMMIT around `fn`; ROLLBACK and rethrow when it throws. */
  transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T>;
  /** A cheap, time-bounded query proving the database answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
