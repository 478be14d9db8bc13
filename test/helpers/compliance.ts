import request from 'supertest';
import type { SqlDatabase } from '../../src/adapters/ledger/sql';
import type { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { Clock, EnrollmentRecord } from '../../src/core/ports';
import { type TestVault, TOKENS } from './vault';

/** A clock a test moves forward by hand (retention deadlines, lease expiry). */
export class TestClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

export const DAY_MS = 24 * 60 * 60 * 1000;

/** The vault's own database, for bulk seeding and for playing the attacker. */
export function dbOf(vault: TestVault): SqlDatabase {
  return (vault.container.ledger as SqlLedger).db;
}

export function api(vault: TestVault, role: keyof typeof TOKENS = 'admin') {
  const auth = { Authorization: `Bearer ${TOKENS[role]}` };
  return {
    get: (path: string) => request(vault.url).get(path).set(auth),
    post: (path: string, body?: object) => request(vault.url).post(path).set(auth).send(body),
    put: (path: string, body?: object) => request(vault.url).put(path).set(auth).send(body),
    delete: (path: string, body?: object) => request(vault.url).delete(path).set(auth).send(body),
  };
}

export function enrollmentOf(vault: TestVault, ref: string): Promise<EnrollmentRecord | null> {
  return vault.container.ledger.transaction((tx) => tx.enrollments.get(ref));
}

/** Onboards a scan through the simulator and steps the pipeline until it is ACTIVE. */
export async function onboardActive(
  vault: TestVault,
  customerId: string,
  scan: Record<string, unknown> = {},
): Promise<{ scanReference: string; facemapBase64: string; record: EnrollmentRecord }> {
  const created = await vault.sim.createScan({ customerId, ...scan });
  const delivered = await vault.sim.sendCallback(
    created.scanReference,
    `${vault.url}/webhooks/jumio`,
  );
  if (delivered.status !== 200) throw new Error(`callback answered ${delivered.status}`);
  for (let i = 0; i < 200; i++) {
    await vault.container.pipeline.runOnce();
    const e = await enrollmentOf(vault, created.scanReference);
    if (e && ['ACTIVE', 'REJECTED', 'FAILED', 'PARKED'].includes(e.state)) {
      return { ...created, record: e };
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${created.scanReference} did not settle`);
}

/**
 * Seeds `count` ACTIVE enrollments (every 10th REJECTED) by bulk SQL, created one second
 * apart from `from`, with references `<prefix>-000001` ... (not through the pipeline).
 */
export async function seedEnrollments(
  vault: TestVault,
  prefix: string,
  count: number,
  from: Date,
): Promise<void> {
  await dbOf(vault).query(
    `INSERT INTO enrollments (enrollment_reference, user_reference, state, reason, created_at,
       updated_at, stored_at, activated_at, jumio_deleted_at, facemap_bytes, key_id, blob_key,
       ciphertext_sha256)
     SELECT $1 || '-' || lpad(g::text, 6, '0'), $1 || '-user-' || g,
            CASE WHEN g % 10 = 0 THEN 'REJECTED' ELSE 'ACTIVE' END,
            CASE WHEN g % 10 = 0 THEN 'similarity_not_match' END,
            $3::timestamptz + g * interval '1 second', $3::timestamptz + g * interval '1 second',
            CASE WHEN g % 10 <> 0 THEN $3::timestamptz + g * interval '1 second' END,
            CASE WHEN g % 10 <> 0 THEN $3::timestamptz + g * interval '1 second' END,
            CASE WHEN g % 10 <> 0 THEN $3::timestamptz + g * interval '1 second' END,
            CASE WHEN g % 10 <> 0 THEN 1024 END,
            CASE WHEN g % 10 <> 0 THEN 'local:seed-key' END,
            CASE WHEN g % 10 <> 0 THEN 'facemaps/' || $1 || '-' || lpad(g::text, 6, '0') || '/seed.bin' END,
            CASE WHEN g % 10 <> 0 THEN repeat('ab', 32) END
       FROM generate_series(1, $2::int) g`,
    [prefix, count, from],
  );
}
