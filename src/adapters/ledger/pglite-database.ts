import { cpSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DependencyError } from '../../core/errors';
import { lockDataDir, type DataDirLock } from './data-dir-lock';
import type { OpenOptions, Request, Response } from './pglite-worker';
import type { SqlClient, SqlDatabase, SqlResult } from './sql';

/**
 * PostgreSQL settings for the embedded ledger. PGlite holds its whole server in one
 * WebAssembly memory that grows and never shrinks, so these bound what it can grow to:
 * shared buffers (PostgreSQL's default is 128 MB) and the per-operation work areas.
 */
export const PGLITE_SETTINGS: Record<string, string> = {
  shared_buffers: '16MB',
  work_mem: '4MB',
  maintenance_work_mem: '16MB',
  temp_buffers: '4MB',
};

/** The ledger template `npm run build` writes (ledger-template.ts). */
export const LEDGER_TEMPLATE = path.resolve(__dirname, '../../../ledger-template');

/** A request without its id (the id is given when it is sent). */
type Call = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** An error from the ledger thread, with its fields (`code`, `detail`...) restored. */
function errorFrom(data: Record<string, unknown>): Error {
  const error = new Error(String(data.message ?? 'embedded ledger error'));
  Object.assign(error, data);
  return error;
}

const tagOf = (value: unknown) => Object.prototype.toString.call(value);

/**
 * Values that crossed from the thread are rebuilt from this realm's constructors when they
 * come from another one (under jest, whose tests run in their own realm, `instanceof Date`
 * would otherwise fail); in a plain process they already are this realm's.
 */
function ownRealm(rows: Array<Record<string, unknown>>): void {
  for (const row of rows) {
    for (const [key, value] of Object.entries(row)) {
      if (typeof value !== 'object' || value === null) continue;
      if (value instanceof Date || value instanceof Uint8Array) continue;
      const tag = tagOf(value);
      if (tag === '[object Date]') row[key] = new Date((value as Date).getTime());
      else if (tag === '[object Uint8Array]') row[key] = new Uint8Array(value as Uint8Array);
    }
  }
}

function isEmptyDir(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/** The worker's file: compiled JavaScript, or TypeScript under ts-node or jest. */
function startWorker(workerData: OpenOptions): Worker {
  const compiled = path.join(__dirname, 'pglite-worker.js');
  // Its V8 heap only holds messages and results; PostgreSQL's memory is WebAssembly's.
  const resourceLimits = { maxOldGenerationSizeMb: 128 };
  if (existsSync(compiled)) return new Worker(compiled, { workerData, resourceLimits });
  const source = path.join(__dirname, 'pglite-worker.ts');
  return new Worker(
    `require('ts-node/register/transpile-only'); require(${JSON.stringify(source)});`,
    { eval: true, workerData, resourceLimits },
  );
}

/**
 * Embedded PostgreSQL (WebAssembly) in a data directory: the zero-configuration ledger.
 * It runs in its own thread (pglite-worker.ts) so that statements never block the HTTP
 * server. One connection only: transactions are taken one at a time here (a queue), and a
 * statement outside a transaction waits in PGlite behind the open one. The data directory
 * is locked for as long as it is open: a second process would silently lose its writes.
 */
export class PgliteDatabase implements SqlDatabase {
  readonly kind = 'pglite';
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private nextTx = 1;
  /** The tail of the transaction queue: each transaction starts when the previous ended. */
  private turn: Promise<void> = Promise.resolve();
  private exited: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly lock: DataDirLock | undefined,
  ) {
    worker.on('message', (message: Response) => {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      // The thread keeps the process alive only while a statement is awaited.
      if (this.pending.size === 0) worker.unref();
      if (message.ok) waiting.resolve(message.value);
      else waiting.reject(errorFrom(message.error));
    });
    const fail = (error: Error) => {
      this.exited ??= error;
      for (const waiting of this.pending.values()) waiting.reject(this.exited);
      this.pending.clear();
    };
    worker.on('error', (error) =>
      fail(new DependencyError('ledger', `embedded ledger thread failed: ${error.message}`)),
    );
    worker.on('exit', () => fail(new DependencyError('ledger', 'embedded ledger thread stopped')));
  }

  /**
   * `dataDir` undefined -> in memory (tests). Throws DataDirLockedError when in use. A new
   * (absent or empty) data directory starts as a copy of `template` when given (a migrated
   * data directory): no initdb, which in WebAssembly takes seconds and most of a GB.
   */
  static async open(
    dataDir?: string,
    options: { template?: string } = {},
  ): Promise<PgliteDatabase> {
    const lock = dataDir === undefined ? undefined : lockDataDir(dataDir);
    let worker: Worker | undefined;
    try {
      if (options.template && dataDir !== undefined && isEmptyDir(dataDir)) {
        cpSync(options.template, dataDir, { recursive: true });
      }
      worker = startWorker({ dataDir, settings: PGLITE_SETTINGS });
      const db = new PgliteDatabase(worker, lock);
      await new Promise((resolve, reject) => db.pending.set(0, { resolve, reject }));
      return db;
    } catch (error) {
      await worker?.terminate();
      lock?.release();
      throw error;
    }
  }

  private call<T>(request: Call): Promise<T> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ ...request, id });
    });
  }

  private client(tx?: number): SqlClient {
    return {
      query: async <R>(sql: string, params?: unknown[]) => {
        const result = await this.call<SqlResult<R>>({ op: 'query', sql, params, tx });
        ownRealm(result.rows as Array<Record<string, unknown>>);
        return result;
      },
      exec: (sql: string) => this.call<void>({ op: 'exec', sql, tx }),
    };
  }

  query<R>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    return this.client().query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.client().exec(sql);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1 FROM schema_migrations LIMIT 1');
  }

  async transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T> {
    const previous = this.turn;
    let done!: () => void;
    this.turn = new Promise<void>((resolve) => (done = resolve));
    await previous;
    try {
      // Begun in the thread by its first statement: no round trip of its own.
      const tx = this.nextTx++;
      let result: T;
      try {
        result = await fn(this.client(tx));
      } catch (error) {
        await this.call({ op: 'rollback', tx }).catch(() => undefined);
        throw error;
      }
      await this.call({ op: 'commit', tx });
      return result;
    } finally {
      done();
    }
  }

  async close(): Promise<void> {
    try {
      if (!this.exited) await this.call({ op: 'close' });
    } finally {
      await this.worker.terminate();
      this.lock?.release();
    }
  }
}
