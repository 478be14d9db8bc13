import request from 'supertest';
import type { Clock } from '../../src/core/ports';
import { api, dbOf } from '../helpers/compliance';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  TOKENS,
  vaultLedgerKinds,
} from '../helpers/vault';

/** A clock the test sets: month buckets are asserted exactly, whatever today is. */
class SetClock implements Clock {
  constructor(private at: Date) {}
  now(): Date {
    return new Date(this.at);
  }
  set(at: string): void {
    this.at = new Date(at);
  }
}

const NOW = '2026-06-15T12:00:00.000Z';

/**
 * The routes the compliance console reads (issue 12) besides those of issue 9: who am I,
 * facemaps per month, retention deadlines per month, legal holds, erasure receipts, the
 * audit chain's status with the last recorded verification; and how /console is served.
 */
describe.each(vaultLedgerKinds)('console API on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;
  const clock = new SetClock(new Date(NOW));

  /** Enrollment rows as they would stand, by SQL (columns not given stay NULL). */
  async function insert(rows: Array<Record<string, string | number | null>>) {
    for (const row of rows) {
      const columns = Object.keys(row);
      await dbOf(vault).query(
        `INSERT INTO enrollments (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
        Object.values(row),
      );
    }
  }

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await chooseLedger();
    vault = await startTestVault(sim, ledger, { overrides: { clock } });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  it('tells every role which key it is: GET /v1/me', async () => {
    for (const role of Object.keys(TOKENS) as Array<keyof typeof TOKENS>) {
      const res = await api(vault, role).get('/v1/me').expect(200);
      expect(res.body).toEqual({ name: `${role}-svc`, role });
    }
    await request(vault.url).get('/v1/me').expect(401);
    await request(vault.url).get('/v1/me').set('Authorization', 'Bearer wrong-token').expect(401);
  });

  it('counts facemaps stored, destroyed and held per month, held carried from before the window', async () => {
    // Retention is past for these rows (purpose satisfied): they stay out of the schedule.
    const past = { purpose_satisfied_at: '2026-01-01T00:00:00Z' };
    await insert([
      { enrollment_reference: 'h1', state: 'ACTIVE', stored_at: '2025-12-10T00:00:00Z', ...past },
      {
        enrollment_reference: 'h2',
        state: 'SUPERSEDED',
        stored_at: '2026-01-05T00:00:00Z',
        blob_destroyed_at: '2026-03-01T00:00:00Z',
        ...past,
      },
      { enrollment_reference: 'h3', state: 'ACTIVE', stored_at: '2026-04-02T00:00:00Z', ...past },
      {
        enrollment_reference: 'h4',
        state: 'ERASED',
        stored_at: '2026-04-20T00:00:00Z',
        erased_at: '2026-05-03T00:00:00Z',
        blob_destroyed_at: '2026-05-03T00:00:00Z',
        ...past,
      },
      // The last day of May in UTC, whatever the database session's time zone.
      { enrollment_reference: 'h5', state: 'STORED', stored_at: '2026-05-31T23:30:00Z', ...past },
      { enrollment_reference: 'h6', state: 'REJECTED', ...past },
    ]);
    const res = await api(vault, 'auditor').get('/v1/inventory/history?months=3').expect(200);
    expect(res.body.months).toEqual([
      { month: '2026-04', stored: 2, destroyed: 0, held: 3 },
      { month: '2026-05', stored: 1, destroyed: 1, held: 3 },
      { month: '2026-06', stored: 0, destroyed: 0, held: 3 },
    ]);
    const all = await api(vault, 'auditor').get('/v1/inventory/history').expect(200);
    expect(all.body.months).toHaveLength(24);
    expect(all.body.months[0]).toEqual({ month: '2024-07', stored: 0, destroyed: 0, held: 0 });
    expect(all.body.months.find((m: { month: string }) => m.month === '2026-01')).toEqual({
      month: '2026-01',
      stored: 1,
      destroyed: 0,
      held: 2,
    });
    const bad = await api(vault, 'auditor').get('/v1/inventory/history?months=0').expect(400);
    expect(bad.body.error.fields).toEqual([
      expect.objectContaining({ field: 'query.months', message: expect.stringMatching(/120/) }),
    ]);
    await api(vault, 'auditor').get('/v1/inventory/history?months=121').expect(400);
    await api(vault, 'auditor').get('/v1/inventory/history?month=3').expect(400);
  });

  it('lists retention deadlines for the next 36 months, zeros included, holds apart', async () => {
    // Deadline: the last interaction (here: the creation) + 1095 days, or purpose satisfied.
    await insert([
      {
        enrollment_reference: 'r1',
        user_reference: 'r-user-1',
        state: 'REJECTED',
        created_at: '2024-01-10T00:00:00Z',
      },
      {
        enrollment_reference: 'r2',
        user_reference: 'r-user-2',
        state: 'REJECTED',
        created_at: '2024-01-20T00:00:00Z',
      },
      {
        enrollment_reference: 'r3',
        user_reference: 'r-user-3',
        state: 'REJECTED',
        created_at: '2025-03-01T00:00:00Z',
      },
      // Already past: in the summary's retentionPastDue, not in the schedule.
      {
        enrollment_reference: 'r4',
        user_reference: 'r-user-4',
        state: 'REJECTED',
        created_at: '2023-01-01T00:00:00Z',
      },
      // The last month of the window, and just after it.
      {
        enrollment_reference: 'r5',
        user_reference: 'r-user-5',
        state: 'REJECTED',
        created_at: '2026-06-01T00:00:00Z',
      },
      {
        enrollment_reference: 'r6',
        user_reference: 'r-user-6',
        state: 'REJECTED',
        created_at: '2026-06-10T00:00:00Z',
      },
      {
        enrollment_reference: 'r7',
        user_reference: 'r-user-7',
        state: 'REJECTED',
        created_at: '2024-06-01T00:00:00Z',
        purpose_satisfied_at: '2026-07-04T00:00:00Z',
      },
      {
        enrollment_reference: 'r8',
        user_reference: 'r-user-8',
        state: 'ERASED',
        created_at: '2024-01-10T00:00:00Z',
      },
    ]);
    await api(vault)
      .put('/v1/enrollments/r-user-3/legal-hold', { reference: 'HOLD-R3', reason: 'litigation' })
      .expect(200);
    const res = await api(vault, 'auditor').get('/v1/inventory/retention-schedule').expect(200);
    expect(res.body).toMatchObject({
      from: NOW,
      to: '2029-06-01T00:00:00.000Z',
      retentionDays: 1095,
    });
    const months = res.body.months as Array<{ month: string; due: number; onHold: number }>;
    expect(months).toHaveLength(36);
    expect(months[0]!.month).toBe('2026-06');
    expect(months[35]!.month).toBe('2029-05');
    expect(months.filter((m) => m.due > 0)).toEqual([
      { month: '2026-07', due: 1, onHold: 0 },
      { month: '2027-01', due: 2, onHold: 0 },
      { month: '2028-02', due: 1, onHold: 1 },
      { month: '2029-05', due: 1, onHold: 0 },
    ]);
    const short = await api(vault, 'auditor')
      .get('/v1/inventory/retention-schedule?months=2')
      .expect(200);
    expect(short.body.months).toEqual([
      { month: '2026-06', due: 0, onHold: 0 },
      { month: '2026-07', due: 1, onHold: 0 },
    ]);
  });

  it('lists legal holds in pages, reason as stored', async () => {
    const hostile = '<img src=x onerror=alert(1)> "quoted" & more';
    await api(vault)
      .put('/v1/enrollments/r-user-1/legal-hold', { reference: 'HOLD-R1', reason: hostile })
      .expect(200);
    await api(vault)
      .put('/v1/enrollments/r-user-2/legal-hold', { reference: 'HOLD-R2', reason: 'audit' })
      .expect(200);
    const first = await api(vault, 'auditor').get('/v1/legal-holds?limit=2').expect(200);
    expect(first.body.items.map((h: { userReference: string }) => h.userReference)).toEqual([
      'r-user-1',
      'r-user-2',
    ]);
    expect(first.body.items[0]).toEqual({
      userReference: 'r-user-1',
      reference: 'HOLD-R1',
      reason: hostile,
      placedBy: 'admin-svc',
      placedAt: NOW,
    });
    const second = await api(vault, 'auditor')
      .get(`/v1/legal-holds?limit=2&cursor=${first.body.nextCursor}`)
      .expect(200);
    expect(second.body).toEqual({
      items: [expect.objectContaining({ userReference: 'r-user-3', reference: 'HOLD-R3' })],
      nextCursor: null,
    });
    const [body, tag] = (first.body.nextCursor as string).split('.');
    const forged = Buffer.from(JSON.stringify({ userReference: 'a' })).toString('base64url');
    await api(vault, 'auditor').get(`/v1/legal-holds?cursor=${forged}.${tag}`).expect(400);
    await api(vault, 'auditor').get(`/v1/legal-holds?cursor=${body}.${tag}`).expect(200);
  });

  it('lists erasure receipts newest first, in pages, by state and user', async () => {
    await insert(
      ['e1', 'e2', 'e3'].map((ref) => ({
        enrollment_reference: ref,
        user_reference: `${ref}-user`,
        state: 'REJECTED',
        purpose_satisfied_at: '2026-01-01T00:00:00Z',
      })),
    );
    const erased: string[] = [];
    for (const [i, ref] of ['e1', 'e2', 'e3'].entries()) {
      clock.set(`2026-06-15T12:0${i + 1}:00.000Z`);
      const res = await api(vault)
        .delete(`/v1/enrollments/${ref}-user`, { reason: 'gdpr_art17', ticket: `TICKET-${i}` })
        .expect(200);
      erased.push(res.body.erasureId);
    }
    clock.set(NOW);
    const first = await api(vault, 'auditor').get('/v1/erasures?limit=2').expect(200);
    expect(first.body.items).toEqual([
      expect.objectContaining({
        erasureId: erased[2],
        userReference: 'e3-user',
        state: 'DONE',
        ticket: 'TICKET-2',
        requestedBy: 'admin-svc',
        requestedAt: '2026-06-15T12:03:00.000Z',
        enrollmentReferences: ['e3'],
      }),
      expect.objectContaining({ erasureId: erased[1] }),
    ]);
    const second = await api(vault, 'auditor')
      .get(`/v1/erasures?limit=2&cursor=${first.body.nextCursor}`)
      .expect(200);
    expect(second.body.items.map((r: { erasureId: string }) => r.erasureId)).toEqual([erased[0]]);
    expect(second.body.nextCursor).toBeNull();
    const byUser = await api(vault, 'auditor').get('/v1/erasures?userReference=e2-user');
    expect(byUser.body.items.map((r: { erasureId: string }) => r.erasureId)).toEqual([erased[1]]);
    const pending = await api(vault, 'auditor').get('/v1/erasures?state=PENDING').expect(200);
    expect(pending.body.items).toEqual([]);
    await api(vault, 'auditor').get('/v1/erasures?state=LOST').expect(400);
    // The auditor reads receipts; erasing stays an admin action.
    await api(vault, 'auditor').delete('/v1/enrollments/e1-user', { reason: 'other' }).expect(403);
  });

  it('records each verification in the trail and reports the last one with the chain status', async () => {
    const before = await api(vault, 'auditor').get('/v1/audit/status').expect(200);
    expect(before.body.lastVerification).toBeNull();
    expect(before.body.lastDigest).toBeNull();
    expect(before.body.head.seq).toBeGreaterThan(0);

    const report = (await api(vault, 'auditor').get('/v1/audit/verify').expect(200)).body;
    // Denials are audited by a timer: entries may have arrived since `before`.
    expect(report).toEqual({ ok: true, checkedThrough: expect.any(Number), digestsChecked: 0 });
    expect(report.checkedThrough).toBeGreaterThanOrEqual(before.body.head.seq);
    await api(vault).post('/v1/audit/digests').expect(201);

    const after = await api(vault, 'auditor').get('/v1/audit/status').expect(200);
    const entries = await api(vault, 'auditor').get('/v1/audit-events?type=audit.verified');
    expect(entries.body.items).toEqual([
      expect.objectContaining({ type: 'audit.verified', actor: 'auditor-svc', details: report }),
    ]);
    const entry = entries.body.items[0] as { seq: number; at: string };
    expect(entry.seq).toBe(report.checkedThrough + 1);
    expect(after.body).toEqual({
      head: { seq: expect.any(Number) },
      lastDigest: { number: 1, toSequence: expect.any(Number), createdAt: NOW },
      lastVerification: { ...report, seq: entry.seq, at: entry.at, actor: 'auditor-svc' },
    });
    expect(after.body.lastDigest.toSequence).toBeGreaterThanOrEqual(entry.seq);
    expect(after.body.head.seq).toBeGreaterThanOrEqual(after.body.lastDigest.toSequence);
  });

  describe('/console', () => {
    it('serves the page with a strict CSP of its own; the API keeps its headers', async () => {
      const page = await request(vault.url).get('/console').expect(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['cache-control']).toBe('no-cache');
      const csp = Object.fromEntries(
        (page.headers['content-security-policy'] as string)
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name, values.join(' ')]),
      );
      expect(csp).toEqual({
        'default-src': "'none'",
        'script-src': "'self'",
        'script-src-attr': "'none'",
        'style-src': "'self'",
        'style-src-attr': "'none'",
        'img-src': "'self'",
        'font-src': "'self'",
        'connect-src': "'self'",
        'base-uri': "'none'",
        'form-action': "'none'",
        'frame-ancestors': "'none'",
        'object-src': "'none'",
        'require-trusted-types-for': "'script'",
        'trusted-types': "'none'",
      });
      expect(page.headers['x-frame-options']).toBe('DENY');
      expect(page.headers['referrer-policy']).toBe('no-referrer');
      expect(page.headers['x-content-type-options']).toBe('nosniff');
      // No inline script or style in the page itself.
      expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(page.text).not.toMatch(/<style|\sstyle=/);
      await request(vault.url).get('/console/').expect(200);

      const health = await request(vault.url).get('/healthz').expect(200);
      expect(health.headers['content-security-policy']).toMatch(/upgrade-insecure-requests/);
      expect(health.headers['content-security-policy']).not.toMatch(/trusted-types/);
      const me = await api(vault, 'auditor').get('/v1/me').expect(200);
      expect(me.headers['content-security-policy']).toBe(health.headers['content-security-policy']);
    });

    it('serves hashed assets as immutable with their types, and nothing else', async () => {
      const page = await request(vault.url).get('/console').expect(200);
      const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(page.text)?.[1];
      const style = /href="(\/console\/assets\/[^"]+\.css)"/.exec(page.text)?.[1];
      expect(script).toBeDefined();
      expect(style).toBeDefined();
      const js = await request(vault.url).get(script!).expect(200);
      expect(js.headers['content-type']).toMatch(/^(text|application)\/javascript/);
      expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(js.headers['content-security-policy']).toMatch(/default-src 'none'/);
      const css = await request(vault.url).get(style!).expect(200);
      expect(css.headers['content-type']).toMatch(/^text\/css/);
      const icon = await request(vault.url).get('/console/favicon.svg').expect(200);
      expect(icon.headers['content-type']).toMatch(/^image\/svg\+xml/);
      expect(icon.headers['cache-control']).toBe('no-cache');
      await request(vault.url).get('/console/assets/missing.js').expect(404);
      await request(vault.url).get('/console/../package.json').expect(404);
      await request(vault.url).get('/console/%2e%2e/package.json').expect(404);
      const post = await request(vault.url).post('/console').expect(405);
      expect(post.headers.allow).toMatch(/GET/);
    });
  });
});
