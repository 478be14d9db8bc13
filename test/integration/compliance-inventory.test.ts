import { get as httpGet, type IncomingMessage } from 'node:http';
import { parse } from 'csv-parse/sync';
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
import { api, dbOf, onboardActive, seedEnrollments } from '../helpers/compliance';

/**
 * The stored-facemap inventory (issue 9 #1) through real HTTP on each ledger: keyset pages
 * over 10,000 enrollments, the 100,000-row export read incrementally, CSV safety, and a
 * client that goes away. Rows are seeded by bulk SQL, not through the pipeline.
 */
describe.each(vaultLedgerKinds)('inventory on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;
  const PAGE_FROM = new Date('2020-01-01T00:00:00Z');
  const EXPORT_FROM = new Date('2010-01-01T00:00:00Z');

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await chooseLedger();
    vault = await startTestVault(sim, ledger);
    await seedEnrollments(vault, 'pg', 10_000, PAGE_FROM);
  }, 120_000);
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  const pageRange = `createdAfter=${PAGE_FROM.toISOString()}&createdBefore=2021-01-01T00:00:00Z`;

  it('pages through 10,000 enrollments, each exactly once and in order, while new ones arrive', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let arrivals = 0;
    do {
      const res = await api(vault, 'auditor').get(
        `/v1/enrollments?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status).toBe(200);
      seen.push(
        ...res.body.items.map((i: { enrollmentReference: string }) => i.enrollmentReference),
      );
      cursor = res.body.nextCursor;
      // New enrollments arrive between pages (after the seeded ones in the order).
      await dbOf(vault).query(
        `INSERT INTO enrollments (enrollment_reference, user_reference, state) VALUES ($1, $2, 'PENDING')`,
        [`arrival-${++arrivals}`, `arrival-user-${arrivals}`],
      );
    } while (cursor);
    const seeded = seen.filter((r) => r.startsWith('pg-'));
    expect(seeded).toHaveLength(10_000);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seeded).toEqual(
      Array.from({ length: 10_000 }, (_, i) => `pg-${String(i + 1).padStart(6, '0')}`),
    );
    // Arrivals that sorted after the reader's position were read too, once.
    expect(seen.filter((r) => r.startsWith('arrival-')).length).toBeGreaterThan(0);
  });

  it('combines filters, shows retention and hold, and refuses limit 1001 and a tampered cursor', async () => {
    // Seeds 1..10000 are one second apart from PAGE_FROM; ACTIVE unless a multiple of 10.
    const from = new Date(PAGE_FROM.getTime() + 100_000).toISOString();
    const to = new Date(PAGE_FROM.getTime() + 200_000).toISOString();
    await api(vault).put('/v1/enrollments/pg-user-150001/legal-hold', {
      reference: 'HOLD-1',
      reason: 'litigation',
    });
    await api(vault)
      .put('/v1/enrollments/pg-user-1501/legal-hold', { reference: 'HOLD-2', reason: 'litigation' })
      .expect(200);
    const res = await api(vault, 'auditor').get(
      `/v1/enrollments?state=ACTIVE&createdAfter=${from}&createdBefore=${to}&limit=1000`,
    );
    expect(res.status).toBe(200);
    // Seconds 100..199: 100 rows, 10 of them REJECTED.
    expect(res.body.items).toHaveLength(90);
    expect(res.body.items.every((i: { state: string }) => i.state === 'ACTIVE')).toBe(true);
    const held = await api(vault, 'auditor').get(`/v1/enrollments?legalHold=true&${pageRange}`);
    expect(held.body.items.map((i: { userReference: string }) => i.userReference)).toEqual([
      'pg-user-1501',
    ]);
    const item = held.body.items[0];
    expect(item).toMatchObject({ legalHold: true, lastInteractionAt: item.activatedAt });
    // Last interaction (the activation, until authentications record theirs) + 1095 days.
    expect(Date.parse(item.retentionDueAt) - Date.parse(item.activatedAt)).toBe(1095 * 86_400_000);
    const dueBefore = new Date(PAGE_FROM.getTime() + 1095 * 86_400_000 + 51_000).toISOString();
    const due = await api(vault, 'auditor').get(
      `/v1/enrollments?retentionDueBefore=${dueBefore}&state=ACTIVE&limit=1000`,
    );
    // Seeds 1..50 are due before that instant; 5 of them are REJECTED.
    expect(
      due.body.items.map((i: { enrollmentReference: string }) => i.enrollmentReference),
    ).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1)
        .filter((n) => n % 10 !== 0)
        .map((n) => `pg-${String(n).padStart(6, '0')}`),
    );

    const tooMany = await api(vault, 'auditor').get('/v1/enrollments?limit=1001');
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.fields).toEqual([
      { field: 'query.limit', message: expect.stringMatching(/1 to 1000/) },
    ]);
    const first = await api(vault, 'auditor').get('/v1/enrollments?limit=2');
    const cursor: string = first.body.nextCursor;
    const [body, tag] = cursor.split('.');
    const forged = Buffer.from(
      JSON.stringify({ createdAt: '2000-01-01 00:00:00+00', enrollmentReference: 'a' }),
    ).toString('base64url');
    for (const bad of [`${forged}.${tag}`, `${body}.${tag!.slice(1)}x`, 'garbage', `${body}`]) {
      const res2 = await api(vault, 'auditor').get(
        `/v1/enrollments?cursor=${encodeURIComponent(bad)}`,
      );
      expect(res2.status).toBe(400);
      expect(res2.body.error.message).toMatch(/cursor/);
    }
    await api(vault, 'auditor')
      .get(`/v1/enrollments?cursor=${encodeURIComponent(cursor)}`)
      .expect(200);
  });

  it('summarises counts by state, the oldest ACTIVE facemap, deadlines, holds, bytes and keys', async () => {
    const res = await api(vault, 'auditor').get('/v1/inventory/summary').expect(200);
    expect(res.body.byState.ACTIVE).toBeGreaterThanOrEqual(9000);
    expect(res.body.byState.REJECTED).toBeGreaterThanOrEqual(1000);
    expect(res.body.oldestActive).toEqual({
      enrollmentReference: 'pg-000001',
      activatedAt: new Date(PAGE_FROM.getTime() + 1000).toISOString(),
    });
    expect(res.body.legalHolds).toBe(2);
    expect(res.body.facemapsByKey).toContainEqual({ keyId: 'local:seed-key', facemaps: 9000 });
    expect(res.body.facemapBytes).toBeGreaterThanOrEqual(9000 * 1024);
    // Seeded in 2020: all past the 3-year deadline now.
    expect(res.body.retentionPastDue).toBeGreaterThanOrEqual(10_000);
  });

  describe('export', () => {
    let facemapBase64: string;
    beforeAll(async () => {
      await seedEnrollments(vault, 'ex', 100_000, EXPORT_FROM);
      // Hostile values, as a compromised ledger row might hold them.
      const hostile = ['=HYPERLINK("http://evil")', '+1+1', '-2+3', '@SUM(A1)', 'a,"b"\r\nc'];
      for (const [i, reason] of hostile.entries()) {
        await dbOf(vault).query(
          `INSERT INTO enrollments (enrollment_reference, user_reference, state, reason, created_at)
           VALUES ($1, $2, 'REJECTED', $3, $4)`,
          [`hostile-${i}`, `=cmd|' /C calc'!A${i}`, reason, new Date('2009-01-01T00:00:00Z')],
        );
      }
      facemapBase64 = (await onboardActive(vault, 'export-real-user')).facemapBase64;
    }, 120_000);

    /** Reads the export as a client would, chunk by chunk; `stopAfter` bytes: hang up. */
    function readExport(
      query: string,
      onChunk: (chunk: Buffer) => void,
      stopAfter = Infinity,
    ): Promise<{ status: number; headers: IncomingMessage['headers']; aborted: boolean }> {
      return new Promise((resolve, reject) => {
        let received = 0;
        const req = httpGet(
          `${vault.url}/v1/inventory/export?${query}`,
          { headers: { Authorization: `Bearer ${TOKENS.auditor}` } },
          (res) => {
            res.on('data', (chunk: Buffer) => {
              received += chunk.length;
              onChunk(chunk);
              if (received >= stopAfter) {
                req.destroy();
                resolve({ status: res.statusCode!, headers: res.headers, aborted: true });
              }
            });
            res.on('end', () =>
              resolve({ status: res.statusCode!, headers: res.headers, aborted: false }),
            );
            res.on('error', () => undefined);
          },
        );
        req.on('error', (error) => (received >= stopAfter ? undefined : reject(error)));
      });
    }

    it('streams 100,000 rows as NDJSON, each once, metadata only', async () => {
      const refs = new Set<string>();
      let partial = '';
      let chunks = 0;
      let leaked = false;
      const needle = facemapBase64.slice(0, 40);
      const result = await readExport(
        `format=ndjson&createdBefore=2019-01-01T00:00:00Z`,
        (chunk) => {
          chunks += 1;
          const text = partial + chunk.toString('utf8');
          const lines = text.split('\n');
          partial = lines.pop()!;
          for (const line of lines) {
            const row = JSON.parse(line) as Record<string, unknown>;
            refs.add(row.enrollmentReference as string);
            if (line.includes(needle)) leaked = true;
          }
        },
      );
      expect(result).toMatchObject({ status: 200, aborted: false });
      expect(result.headers['content-type']).toMatch(/application\/x-ndjson/);
      expect(partial).toBe('');
      // 100,000 seeded + 5 hostile, each exactly once, read as it arrived.
      expect(refs.size).toBe(100_005);
      expect(chunks).toBeGreaterThan(10);
      expect(leaked).toBe(false);
    }, 120_000);

    it('never exports biometric bytes, and writes CSV that survives hostile values', async () => {
      let text = '';
      const result = await readExport('format=csv&createdBefore=2010-01-01T00:00:00Z', (c) => {
        text += c.toString('utf8');
      });
      expect(result.status).toBe(200);
      expect(result.headers['content-type']).toMatch(/text\/csv/);
      const rows = parse(text, { columns: true }) as Array<Record<string, string>>;
      expect(rows.map((r) => r.enrollmentReference)).toEqual([
        'hostile-0',
        'hostile-1',
        'hostile-2',
        'hostile-3',
        'hostile-4',
      ]);
      // Every cell that a spreadsheet would evaluate is prefixed with a quote; the rest is
      // intact (the quoting survives commas, quotes and line breaks).
      expect(rows.map((r) => r.reason)).toEqual([
        `'=HYPERLINK("http://evil")`,
        `'+1+1`,
        `'-2+3`,
        `'@SUM(A1)`,
        'a,"b"\r\nc',
      ]);
      expect(rows.every((r) => r.userReference!.startsWith(`'=cmd`))).toBe(true);
      for (const r of rows) for (const v of Object.values(r)) expect(v).not.toMatch(/^[=+\-@]/);

      const real = await readExport('format=csv&createdAfter=2026-01-01T00:00:00Z', (c) => {
        text += c.toString('utf8');
      });
      expect(real.status).toBe(200);
      expect(text).toContain('export-real-user');
      expect(text).not.toContain(facemapBase64.slice(0, 40));
      expect(text).not.toContain(Buffer.from(facemapBase64, 'base64').toString('hex').slice(0, 40));
    });

    it('stops reading the ledger when the client goes away', async () => {
      const result = await readExport('format=csv', () => undefined, 64 * 1024);
      expect(result.aborted).toBe(true);
      let stopped: { rows: number } | undefined;
      for (let i = 0; i < 200 && !stopped; i++) {
        const line = vault.logs.lines
          .map((l) => JSON.parse(l) as { msg?: string; rows?: number })
          .find((l) => l.msg?.startsWith('inventory export stopped'));
        if (line) stopped = { rows: line.rows! };
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(stopped).toBeDefined();
      // It read what the socket buffers held (a few MB) at most, not the 110,000 rows.
      expect(stopped!.rows).toBeLessThan(50_000);
    });
  });
});
