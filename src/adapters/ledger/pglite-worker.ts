/**
 * The embedded ledger's thread (worker_threads): PGlite is PostgreSQL compiled to
 * WebAssembly and runs synchronously, so on the main thread every statement would stop the
 * HTTP server. Here it runs beside it; pglite-database.ts talks to it by messages. An
 * interactive transaction is held open here (PGlite's own transaction, which queues every
 * other statement behind it) until the main thread sends its commit or rollback.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PGlite, Transaction } from '@electric-sql/pglite' with {
  'resolution-mode': 'import',
};

export interface OpenOptions {
  dataDir?: string;
  /** PostgreSQL settings (`-c name=value`), added to PGlite's own start parameters. */
  settings: Record<string, string>;
}

export type Request =
  /** `tx`: in that transaction; the first statement of one opens it (saves a round trip). */
  | { id: number; op: 'query'; sql: string; params?: unknown[]; tx?: number }
  | { id: number; op: 'exec'; sql: string; tx?: number }
  | { id: number; op: 'commit' | 'rollback'; tx: number }
  | { id: number; op: 'close' };

export type Response =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: Record<string, unknown> };

interface OpenTransaction {
  tx: Transaction;
  finish(commit: boolean): void;
  done: Promise<unknown>;
}

const port = parentPort!;
const options = workerData as OpenOptions;
/** Open transactions by the main side's id; a promise while PGlite has not begun it yet. */
const transactions = new Map<number, Promise<OpenTransaction>>();

/** An error as plain data (its class does not cross threads; its fields, e.g. `code`, do). */
function errorData(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const data: Record<string, unknown> = { name: error.name, message: error.message };
  for (const [key, value] of Object.entries(error)) {
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) data[key] = value;
  }
  return data;
}

async function start(): Promise<PGlite> {
  const { PGlite } = await import('@electric-sql/pglite');
  const defaults = (PGlite as unknown as { defaultStartParams?: string[] }).defaultStartParams;
  const settings = Object.entries(options.settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  return PGlite.create(options.dataDir, {
    ...(defaults ? { startParams: [...defaults, ...settings] } : {}),
  });
}

function begin(db: PGlite): Promise<OpenTransaction> {
  return new Promise<OpenTransaction>((resolve, reject) => {
    let finish!: (commit: boolean) => void;
    const decided = new Promise<boolean>((r) => (finish = r));
    const done = db.transaction(async (tx) => {
      resolve({ tx, finish, done });
      // PGlite commits when this resolves and rolls back when it throws.
      if (!(await decided)) throw new Rollback();
    });
    // A BEGIN that failed: the callback never ran.
    done.catch((error: unknown) => reject(error));
  });
}

/** The transaction `id`, begun by its first statement. */
function transaction(db: PGlite, id: number): Promise<OpenTransaction> {
  let open = transactions.get(id);
  if (!open) {
    open = begin(db);
    transactions.set(id, open);
  }
  return open;
}

class Rollback extends Error {}

async function handle(db: PGlite, request: Request): Promise<unknown> {
  switch (request.op) {
    case 'query':
    case 'exec': {
      const client = request.tx === undefined ? db : (await transaction(db, request.tx)).tx;
      if (request.op === 'exec') {
        await client.exec(request.sql);
        return null;
      }
      const result = await client.query(request.sql, request.params);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    }
    case 'commit':
    case 'rollback': {
      const opening = transactions.get(request.tx);
      // A transaction that ran no statement was never begun: nothing to end.
      if (!opening) return null;
      transactions.delete(request.tx);
      const open = await opening;
      open.finish(request.op === 'commit');
      try {
        await open.done;
      } catch (error) {
        if (!(error instanceof Rollback)) throw error;
      }
      return null;
    }
    case 'close':
      if (!db.closed) await db.close();
      return null;
  }
}

start().then(
  (db) => {
    port.on('message', (request: Request) => {
      handle(db, request).then(
        (value) => port.postMessage({ id: request.id, ok: true, value } satisfies Response),
        (error: unknown) =>
          port.postMessage({
            id: request.id,
            ok: false,
            error: errorData(error),
          } satisfies Response),
      );
    });
    port.postMessage({ id: 0, ok: true, value: 'ready' } satisfies Response);
  },
  (error: unknown) => {
    port.postMessage({ id: 0, ok: false, error: errorData(error) } satisfies Response);
  },
);
