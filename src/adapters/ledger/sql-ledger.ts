import type {
  AuditEvent,
  AuditEventInput,
  AuditRepository,
  Ledger,
  LedgerTx,
} from '../../core/ports';
import { DependencyError } from '../../core/errors';
import type { SqlClient, SqlDatabase } from './sql';

interface AuditRow {
  id: string | number;
  at: Date;
  type: string;
  actor: string;
  enrollment_reference: string | null;
  authentication_reference: string | null;
  user_reference: string | null;
  details: Record<string, unknown>;
}

function toAuditEvent(row: AuditRow): AuditEvent {
  return {
    id: Number(row.id),
    at: row.at,
    type: row.type,
    actor: row.actor,
    enrollmentReference: row.enrollment_reference,
    authenticationReference: row.authentication_reference,
    userReference: row.user_reference,
    details: row.details,
  };
}

class SqlAuditRepository implements AuditRepository {
  constructor(private readonly sql: SqlClient) {}

  async append(event: AuditEventInput): Promise<AuditEvent> {
    const { rows } = await this.sql.query<AuditRow>(
      `INSERT INTO audit_events
         (type, actor, enrollment_reference, authentication_reference, user_reference, details)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       RETURNING *`,
      [
        event.type,
        event.actor,
        event.enrollmentReference ?? null,
        event.authenticationReference ?? null,
        event.userReference ?? null,
        JSON.stringify(event.details ?? {}),
      ],
    );
    return toAuditEvent(rows[0]!);
  }

  async list(filter: Parameters<AuditRepository['list']>[0] = {}): Promise<AuditEvent[]> {
    const { rows } = await this.sql.query<AuditRow>(
      `SELECT * FROM audit_events
        WHERE ($1::text IS NULL OR enrollment_reference = $1)
          AND ($2::text IS NULL OR user_reference = $2)
          AND id > $3
        ORDER BY id
        LIMIT $4`,
      [
        filter.enrollmentReference ?? null,
        filter.userReference ?? null,
        filter.afterId ?? 0,
        Math.min(Math.max(filter.limit ?? 100, 1), 1000),
      ],
    );
    return rows.map(toAuditEvent);
  }
}

function ledgerTx(sql: SqlClient): LedgerTx {
  return { audit: new SqlAuditRepository(sql) };
}

/** The Ledger port over either SQL driver: the same statements for pg and PGlite. */
export class SqlLedger implements Ledger {
  constructor(readonly db: SqlDatabase) {}

  transaction<T>(fn: (tx: LedgerTx) => Promise<T>): Promise<T> {
    return this.db.transaction((client) => fn(ledgerTx(client)));
  }

  async ping(): Promise<void> {
    try {
      await this.db.query('SELECT 1 FROM schema_migrations LIMIT 1');
    } catch (error) {
      throw new DependencyError('ledger', 'query failed', { cause: error });
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
