import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { api, dbOf, onboardActive } from '../helpers/compliance';
import { eventually, launchChromium } from '../helpers/browser';
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

/**
 * The compliance console (issue 12) in a real browser: headless Chromium against a whole
 * vault (simulator, PGlite, filesystem blobs) seeded with enrollments, authentications, a
 * legal hold and an erasure. Every figure the page shows is checked against the API; a
 * hostile stored value must stay text; no request may leave the vault's origin.
 */

const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts', 'console');
const HOSTILE = '<img src=x onerror=alert(document.domain)> court order 42';
const HOSTILE_PURPOSE = 'login step-up <script>alert(2)</script>';
const DAY = 24 * 60 * 60 * 1000;
/** A browser-side expression's value (the test compiles without the DOM's types). */
const inPage = <T>(page: Page, expression: string) => page.evaluate(expression) as Promise<T>;
const fmt = (n: number) => new Intl.NumberFormat('en-GB').format(n);

// A browser on a loaded 2-core machine: generous per-test time, conditions polled.
jest.setTimeout(90_000);

describe('compliance console in Chromium', () => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  /** Every request any page made, and every dialog or script error it raised. */
  const requests: string[] = [];
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  let alice: { scanReference: string };
  let decryptPurposes: string[];

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    sim = await startTestSimulator();
    ledger = await vaultLedgerKinds[0]![1]();
    vault = await startTestVault(sim, ledger);

    // Real onboardings through the simulator and the pipeline (audited as they happen).
    alice = await onboardActive(vault, 'alice-0001');
    await onboardActive(vault, 'bob-0002');
    await onboardActive(vault, 'carol-0003');
    await onboardActive(vault, 'dave-0004');
    // Two authentications for alice: one PASSED, one left INITIATED.
    decryptPurposes = [HOSTILE_PURPOSE, 'payment approval'];
    const first = await api(vault, 'authenticator')
      .post('/v1/authentications', { userReference: 'alice-0001', purpose: decryptPurposes[0] })
      .expect(201);
    expect(
      (await sim.complete(first.body.authenticationReference, { result: 'PASSED' })).status,
    ).toBe(200);
    await api(vault, 'authenticator')
      .post('/v1/authentications', { userReference: 'alice-0001', purpose: decryptPurposes[1] })
      .expect(201);
    for (let i = 0; i < 20 && (await vault.container.authenticationWorker.runOnce()) > 0; i++);

    // History: 60 enrollments over 30 months (two wrapping keys, some superseded, some
    // rejected), so that the charts and the inventory's pages have something to show.
    await dbOf(vault).query(
      `INSERT INTO enrollments (enrollment_reference, user_reference, state, reason, created_at,
         updated_at, stored_at, activated_at, superseded_at, blob_destroyed_at, facemap_bytes,
         key_id, blob_key, ciphertext_sha256)
       SELECT 'hist-' || lpad(g::text, 3, '0'), 'hist-user-' || g,
              CASE WHEN g % 10 = 0 THEN 'REJECTED' WHEN g % 7 = 0 THEN 'SUPERSEDED' ELSE 'ACTIVE' END,
              CASE WHEN g % 10 = 0 THEN 'similarity_not_match' END,
              now() - g * interval '15 days', now() - g * interval '15 days',
              CASE WHEN g % 10 <> 0 THEN now() - g * interval '15 days' END,
              CASE WHEN g % 10 <> 0 THEN now() - g * interval '15 days' END,
              CASE WHEN g % 10 <> 0 AND g % 7 = 0 THEN now() - g * interval '10 days' END,
              CASE WHEN g % 10 <> 0 AND g % 7 = 0 THEN now() - g * interval '10 days' END,
              CASE WHEN g % 10 <> 0 THEN 1024 END,
              CASE WHEN g % 10 = 0 THEN NULL WHEN g % 3 = 0 THEN 'local:previous-key' ELSE 'local:seed-key' END,
              CASE WHEN g % 10 <> 0 THEN 'facemaps/hist-' || g || '/seed.bin' END,
              CASE WHEN g % 10 <> 0 THEN repeat('ab', 32) END
         FROM generate_series(1, 60) g`,
    );
    await api(vault)
      .put('/v1/enrollments/bob-0002/legal-hold', { reference: 'CASE-42', reason: HOSTILE })
      .expect(200);
    await api(vault)
      .delete('/v1/enrollments/carol-0003', { reason: 'gdpr_art17', ticket: 'DPO-1234' })
      .expect(200);
    await api(vault).post('/v1/audit/digests').expect(201);

    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    if (vault) await removeDir(vault.dataDir);
  });

  /** A fresh browser context (its own storage) whose requests and dialogs are recorded. */
  async function openPage(viewport = { width: 1280, height: 800 }): Promise<Page> {
    const context = await browser.newContext({ viewport, acceptDownloads: true });
    contexts.push(context);
    context.on('request', (r) => requests.push(r.url()));
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    await page.goto(`${vault.url}/console`);
    return page;
  }

  async function signIn(page: Page, role: 'auditor' | 'admin'): Promise<void> {
    await page.getByLabel('API token').fill(TOKENS[role]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(`${role}-svc`, { exact: true }).waitFor();
  }

  async function go(page: Page, view: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: view }).click();
    await page.getByRole('heading', { level: 1, name: view }).waitFor();
  }

  /** The text of every cell (th and td) of each body row. */
  function rows(table: Locator): Promise<string[][]> {
    return table
      .locator('tbody tr')
      .evaluateAll((trs) =>
        trs.map((tr) =>
          Array.from(tr.querySelectorAll('th, td')).map((c) =>
            ((c as { textContent: string | null }).textContent ?? '').trim(),
          ),
        ),
      );
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

  /** Nothing the vault stored became markup: no <img>, no script ran, no fetch of "x". */
  async function expectNoInjection(page: Page): Promise<void> {
    expect(await page.locator('img').count()).toBe(0);
    expect(
      await inPage<number>(page, "document.querySelectorAll('script:not([src])').length"),
    ).toBe(0);
    expect(dialogs).toEqual([]);
    expect(requests.filter((u) => new URL(u).pathname.endsWith('/x'))).toEqual([]);
  }

  it('refuses a wrong token with a clear message and keeps nothing', async () => {
    const page = await openPage();
    await page.getByLabel('API token').fill('not-a-valid-token-0123456789abcdef');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/did not accept this token \(401\)/);
    expect(await inPage<number>(page, 'sessionStorage.length')).toBe(0);
    expect(page.url()).toBe(`${vault.url}/console`);
    await shot(page, 'sign-in-error');
  });

  it('an auditor reads the overview, and every figure matches the API', async () => {
    const page = await openPage();
    await signIn(page, 'auditor');
    expect(await inPage<string[]>(page, 'Object.values(sessionStorage)')).toEqual([TOKENS.auditor]);
    const summary = (await api(vault, 'auditor').get('/v1/inventory/summary').expect(200)).body;
    const history = (await api(vault, 'auditor').get('/v1/inventory/history?months=24')).body;
    const schedule = (await api(vault, 'auditor').get('/v1/inventory/retention-schedule')).body;
    const status = (await api(vault, 'auditor').get('/v1/audit/status')).body;

    const figure = (label: string) =>
      page.locator('.figure', { hasText: label }).locator('dd').textContent();
    const held = ['STORED', 'ACTIVE', 'PARKED'].reduce((n, s) => n + (summary.byState[s] ?? 0), 0);
    await eventually(async () => expect(await figure('Facemaps held')).toBe(fmt(held)));
    expect(held).toBeGreaterThan(40);
    expect(await figure('Retention past due')).toBe(fmt(summary.retentionPastDue));
    expect(await figure('Due within 30 days')).toBe(fmt(summary.retentionDueWithin30Days));
    expect(await figure('Legal holds')).toBe(fmt(summary.legalHolds));
    expect(summary.legalHolds).toBe(1);

    const byState = await rows(page.getByRole('table', { name: 'Enrollments by state' }));
    expect(Object.fromEntries(byState)).toEqual(
      Object.fromEntries(
        ['PENDING', 'STORED', 'ACTIVE', 'REJECTED', 'FAILED', 'SUPERSEDED', 'PARKED', 'ERASED'].map(
          (s) => [s, fmt(summary.byState[s] ?? 0)],
        ),
      ),
    );
    expect(summary.byState.ERASED).toBe(1);

    const keys = await rows(page.getByRole('table', { name: 'Facemaps per wrapping key' }));
    expect(keys).toEqual(
      summary.facemapsByKey.map((k: { keyId: string; facemaps: number }) => [
        k.keyId,
        fmt(k.facemaps),
      ]),
    );
    expect(keys.length).toBeGreaterThanOrEqual(3);

    // The charts' figures, as the tables next to them show them.
    await eventually(() => page.getByText('Figures by month').first().waitFor());
    for (const summaryText of await page.getByText('Figures by month').all()) {
      await summaryText.click();
    }
    const stored = await rows(page.getByRole('table', { name: 'Facemaps stored over time' }));
    expect(stored.map((r) => r.slice(1))).toEqual(
      history.months.map((m: { stored: number; destroyed: number; held: number }) => [
        fmt(m.stored),
        fmt(m.destroyed),
        fmt(m.held),
      ]),
    );
    expect(history.months.at(-1).held).toBe(held);
    const deadlines = await rows(page.getByRole('table', { name: 'Retention deadlines by month' }));
    expect(deadlines).toHaveLength(36);
    expect(deadlines.map((r) => r.slice(1))).toEqual(
      schedule.months.map((m: { due: number; onHold: number }) => [fmt(m.due), fmt(m.onHold)]),
    );
    expect(schedule.months.filter((m: { due: number }) => m.due > 0).length).toBeGreaterThan(10);

    const holds = await rows(page.getByRole('table', { name: 'Legal holds in place' }));
    expect(holds).toEqual([['bob-0002', 'CASE-42', HOSTILE, expect.stringMatching(/admin-svc$/)]]);

    const chain = page.getByLabel('Audit chain status');
    expect(await chain.textContent()).toContain(
      `#${status.lastDigest.number} through entry ${fmt(status.lastDigest.toSequence)}`,
    );
    expect(status.lastVerification).toBeNull();
    expect(await chain.textContent()).toMatch(/Last verifiednever/);
    await expectNoInjection(page);
    await page.getByText('Figures by month').first().click();
    await page.getByText('Figures by month').last().click();
    await shot(page, 'overview');
  });

  it('filters the inventory, pages through it and exports the filter as CSV', async () => {
    const page = await openPage();
    await signIn(page, 'auditor');
    await go(page, 'Inventory');
    const before = new Date(Date.now() - 100 * DAY).toISOString().slice(0, 10);
    await page.getByLabel('State').selectOption('ACTIVE');
    await page.getByLabel('Created before').fill(before);
    await page.getByLabel('Rows per page').selectOption('10');
    await page.getByRole('button', { name: 'Apply filters' }).click();

    const query = `state=ACTIVE&createdBefore=${before}T00:00:00.000Z`;
    const all: string[] = [];
    let cursor: string | null = null;
    const pages: string[][] = [];
    do {
      const res = await api(vault, 'auditor').get(
        `/v1/enrollments?${query}&limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      const refs = res.body.items.map(
        (i: { enrollmentReference: string }) => i.enrollmentReference,
      );
      pages.push(refs);
      all.push(...refs);
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(pages.length).toBeGreaterThanOrEqual(3);

    const shown = async (n: number) => {
      const table = page.getByRole('table', { name: `Enrollments, page ${n}` });
      return eventually(async () => {
        const refs = (await rows(table)).map((r) => r[0]);
        expect(refs).toEqual(pages[n - 1]);
        return refs;
      });
    };
    await shown(1);
    await shot(page, 'inventory');
    for (let n = 2; n <= pages.length; n++) {
      await page.getByRole('button', { name: 'Next page' }).click();
      await shown(n);
    }
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await shown(pages.length - 1);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^inventory-\d{4}-\d{2}-\d{2}\.csv$/);
    const csv = parse(await readFile((await download.path())!), { columns: true }) as Array<
      Record<string, string>
    >;
    expect(csv.map((r) => r.enrollmentReference)).toEqual(all);
    expect(new Set(csv.map((r) => r.state))).toEqual(new Set(['ACTIVE']));
    await page.getByText(/Exported inventory-.*\.csv/).waitFor();
    // The download came from a Blob URL: the token is in no URL the page ever used.
    for (const token of Object.values(TOKENS)) {
      expect(requests.filter((u) => u.includes(token))).toEqual([]);
    }
  });

  it("shows a user's enrollments and authentications as a timeline of audit entries", async () => {
    const page = await openPage();
    await signIn(page, 'auditor');
    await go(page, 'User detail');
    await page.getByLabel('User reference').fill('alice-0001');
    await page.getByRole('button', { name: 'Open' }).click();
    await page.getByRole('heading', { level: 1, name: 'User alice-0001' }).waitFor();

    const enrollments = page.getByRole('table', { name: 'Enrollments of this user' });
    await eventually(async () =>
      expect((await rows(enrollments)).map((r) => r.slice(0, 2))).toEqual([
        [alice.scanReference, 'ACTIVEcurrent'],
      ]),
    );
    const auths = page.getByRole('table', { name: 'Authentications of this user' });
    await eventually(async () =>
      expect((await rows(auths)).map((r) => [r[1], r[2], r[3]])).toEqual([
        ['INITIATED', 'payment approval', 'authenticator-svc'],
        [expect.stringMatching(/^PASSED/), HOSTILE_PURPOSE, 'authenticator-svc'],
      ]),
    );

    const entries = (await api(vault, 'auditor').get('/v1/audit-events?userReference=alice-0001'))
      .body.items as Array<{ seq: number; type: string; actor: string }>;
    const timeline = page.getByRole('list', { name: 'Audit timeline of alice-0001' });
    const items = await eventually(async () => {
      const texts = await timeline.locator('li').allTextContents();
      expect(texts).toHaveLength(entries.length);
      return texts;
    });
    entries.forEach((e, i) => {
      expect(items[i]).toContain(e.type);
      expect(items[i]).toContain(`by ${e.actor}`);
      expect(items[i]).toContain(`#${e.seq}`);
    });
    const types = entries.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['facemap.stored', 'facemap.decrypted']));
    // Why a facemap was decrypted: the stated purpose, as text.
    const decrypted = items.filter((t) => t.includes('facemap.decrypted'));
    expect(decrypted).toEqual(decryptPurposes.map((p) => expect.stringContaining(`Why: ${p}`)));
    await expectNoInjection(page);
    await shot(page, 'user-detail');
  });

  it('runs "Verify now": intact, then the first broken sequence after an edit', async () => {
    const page = await openPage();
    await signIn(page, 'auditor');
    await go(page, 'Audit trail');
    const result = page.getByRole('status', { name: 'Verification result' });

    await page.getByRole('button', { name: 'Verify now' }).click();
    const intact = await eventually(async () => {
      const text = (await result.textContent()) ?? '';
      expect(text).toMatch(/Verified: the audit trail is intact through entry/);
      return text;
    });
    const status = (await api(vault, 'auditor').get('/v1/audit/status')).body;
    expect(status.lastVerification).toMatchObject({ ok: true, actor: 'auditor-svc' });
    expect(intact).toContain(`intact through entry ${fmt(status.lastVerification.checkedThrough)}`);
    expect(intact).toContain(`(${fmt(status.lastVerification.digestsChecked)} signed digests`);

    // Whoever controls the database edits an entry: the next verification names it.
    const [target] = await vault.container.ledger.transaction((tx) => tx.audit.chain(4, 1));
    const db = dbOf(vault);
    const tamper = async (details: unknown) => {
      await db.exec('ALTER TABLE audit_events DISABLE TRIGGER USER');
      try {
        await db.query('UPDATE audit_events SET details = $2::jsonb WHERE seq = $1', [
          target!.seq,
          JSON.stringify(details),
        ]);
      } finally {
        await db.exec('ALTER TABLE audit_events ENABLE TRIGGER USER');
      }
    };
    await tamper({ forged: true });
    try {
      await page.getByRole('button', { name: 'Verify now' }).click();
      await eventually(async () =>
        expect(await result.textContent()).toMatch(
          new RegExp(
            `Broken: the first entry that cannot be trusted is ${target!.seq} \\(edited\\)`,
          ),
        ),
      );
      await shot(page, 'audit-trail');
    } finally {
      await tamper(target!.details);
    }
    await page.getByRole('button', { name: 'Verify now' }).click();
    await eventually(async () => expect(await result.textContent()).toMatch(/intact/));

    // The list, filtered by type: the hold's hostile reason is text in the details.
    await page.getByLabel('Entry type').fill('legal_hold.placed');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const table = page.getByRole('table', { name: 'Audit entries, page 1' });
    await eventually(async () => {
      const r = await rows(table);
      expect(r).toHaveLength(1);
      expect(r[0]!.slice(2, 5)).toEqual(['legal_hold.placed', 'admin-svc', 'bob-0002']);
      expect(r[0]![6]).toContain(`reason: ${HOSTILE}`);
      expect(r[0]![6]).toContain('reference: CASE-42');
    });
    await expectNoInjection(page);
  });

  it('shows erasure receipts to an auditor, without any admin action', async () => {
    const page = await openPage();
    await signIn(page, 'auditor');
    await go(page, 'Erasures');
    const table = page.getByRole('table', { name: 'Erasure receipts, page 1' });
    await eventually(async () =>
      expect((await rows(table)).map((r) => r.slice(0, 4))).toEqual([
        ['carol-0003', 'DONE', 'GDPR Art. 17 request', 'DPO-1234'],
      ]),
    );
    expect(await page.getByRole('heading', { name: "Erase a user's facemaps" }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Erase/ }).count()).toBe(0);
    // And the API refuses the auditor's token for it anyway.
    const refused = await page.evaluate(async (token) => {
      const res = await fetch('/v1/enrollments/dave-0004', {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'other' }),
      });
      return res.status;
    }, TOKENS.auditor);
    expect(refused).toBe(403);
  });

  it('lets an admin erase a user once the user reference is typed again', async () => {
    const page = await openPage();
    await signIn(page, 'admin');
    await go(page, 'Erasures');
    const form = page.getByRole('form', { name: 'Erasure request' });
    await form.getByLabel('User reference').fill('dave-0004');
    await form.getByLabel('Reason').selectOption('account_closed');
    await form.getByLabel('Ticket (optional)').fill('DPO-5678');
    await form.getByRole('button', { name: 'Erase…' }).click();

    const confirm = page.getByRole('form', { name: 'Confirm the erasure' });
    const erase = confirm.getByRole('button', { name: 'Erase permanently' });
    const typed = confirm.getByLabel('Type the user reference to confirm');
    expect(await typed.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    expect(await erase.isDisabled()).toBe(true);
    await typed.fill('dave-000');
    expect(await erase.isDisabled()).toBe(true);
    await typed.fill('dave-0004');
    await shot(page, 'erasures-confirm');
    await erase.click();

    await page.getByText(/^Erased dave-0004: \d+ blobs destroyed/).waitFor();
    const receipts = (await api(vault, 'auditor').get('/v1/erasures?userReference=dave-0004')).body;
    expect(receipts.items).toEqual([
      expect.objectContaining({
        state: 'DONE',
        reason: 'account_closed',
        ticket: 'DPO-5678',
        requestedBy: 'admin-svc',
      }),
    ]);
    expect(receipts.items[0].blobKeysDestroyed.length).toBeGreaterThan(0);
    const table = page.getByRole('table', { name: 'Erasure receipts, page 1' });
    await eventually(async () =>
      expect((await rows(table)).map((r) => r.slice(0, 4))).toEqual([
        ['dave-0004', 'DONE', 'Account closed', 'DPO-5678'],
        ['carol-0003', 'DONE', 'GDPR Art. 17 request', 'DPO-1234'],
      ]),
    );
    await shot(page, 'erasures');
  });

  it('renders a hostile stored value as text on every view that shows it, and runs nothing', async () => {
    const page = await openPage();
    await signIn(page, 'auditor');
    await page.getByText(HOSTILE, { exact: true }).waitFor();
    await page.goto(`${vault.url}/console#/users/bob-0002`);
    await page.getByRole('heading', { level: 1, name: 'User bob-0002' }).waitFor();
    await page.getByText(`Why: ${HOSTILE}`).waitFor();
    await page.goto(`${vault.url}/console#/users/alice-0001`);
    await page.getByRole('cell', { name: HOSTILE_PURPOSE }).waitFor();
    await expectNoInjection(page);
    expect(pageErrors).toEqual([]);
    // No policy violation (inline script or style, Trusted Types) was reported.
    expect(
      consoleErrors.filter((m) => /Content Security Policy|Trusted Type|Refused/i.test(m)),
    ).toEqual([]);
  });

  it('ends the session on a 401 and works by keyboard and on a narrow window', async () => {
    const page = await openPage({ width: 390, height: 844 });
    await signIn(page, 'auditor');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.locator('.figure').first().waitFor();
    // Nothing wider than the window: wide tables scroll inside their own region.
    expect(await inPage<number>(page, 'document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      390,
    );
    await shot(page, 'overview-narrow');

    // Keyboard: the skip button first, then the navigation; Enter follows a link.
    await page.keyboard.press('Tab');
    expect(await inPage<string | undefined>(page, 'document.activeElement?.textContent')).toBe(
      'Skip to content',
    );
    const outline = await inPage<string>(
      page,
      'getComputedStyle(document.activeElement).outlineStyle',
    );
    expect(outline).not.toBe('none');
    const visited: string[] = [];
    for (let i = 0; i < 8 && !visited.includes('Inventory'); i++) {
      await page.keyboard.press('Tab');
      visited.push(
        (await inPage<string | undefined>(page, 'document.activeElement?.textContent')) ?? '',
      );
    }
    expect(visited).toContain('Inventory');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Inventory' }).waitFor();
    await page.getByRole('table', { name: 'Enrollments, page 1' }).waitFor();
    expect(await inPage<number>(page, 'document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      390,
    );
    await shot(page, 'inventory-narrow');

    // The token is revoked (here: replaced) while the tab is open: back to sign-in, told why.
    await inPage(
      page,
      "sessionStorage.setItem(Object.keys(sessionStorage)[0], 'revoked-token-0123456789abcdef')",
    );
    await page.reload();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/session ended.*\(401\)/);
    expect(await inPage<number>(page, 'sessionStorage.length')).toBe(0);
  });

  it('made no request outside the vault origin, and none with a token in its URL', () => {
    const origin = new URL(vault.url).origin;
    expect(requests.length).toBeGreaterThan(20);
    expect(requests.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    expect(requests.some((u) => new URL(u).pathname.startsWith('/v1/'))).toBe(true);
    expect(requests.filter((u) => Object.values(TOKENS).some((t) => u.includes(t)))).toEqual([]);
  });
});
