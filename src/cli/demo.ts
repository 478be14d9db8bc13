import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { createApp } from '../app';
import { loadConfig } from '../config';
import { buildContainer, type Container } from '../container';
import type { AuthenticationView } from '../core/authentication/view';
import type { EnrollmentView } from '../core/enrollment/admin';
import { ADMIN_TOKEN_FILE } from '../http/api-keys';
import { createLogger } from '../logging';

/**
 * `vault demo` (`npm run demo`): whole onboardings, then authentications with the stored
 * facemap, through the vault on embedded defaults, over real HTTP, against the in-process
 * Jumio simulator, with a small calling service that verifies the signed notifications, in
 * a fresh temporary data directory. Every step is checked, so the demo doubles as a smoke
 * test: exit 0 when all held, 1 with the failed expectation otherwise. Prints no facemap
 * bytes, token or PII. `--keep` keeps the data directory; LOG_LEVEL=info also shows the
 * vault's JSON logs.
 */

const USER = 'demo-user-1';
const OTHER_USER = 'demo-user-2';
const WAIT_MS = 30_000;

class ExpectationFailed extends Error {}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ExpectationFailed(message);
}

const say = (line = '') => console.log(line);
const ok = (line: string) => console.log(`   ok  ${line}`);
const short = (ref: string) => ref.slice(0, 8);

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function http<T>(
  method: string,
  url: string,
  options: { body?: unknown; token?: string; expectStatus?: number[] } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const res = await fetch(url, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  const route = new URL(url).pathname;
  const expected = options.expectStatus ?? [200, 201];
  expect(
    expected.includes(res.status),
    `${method} ${route} answered ${res.status}, expected ${expected.join(' or ')}`,
  );
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ExpectationFailed(`${method} ${route} did not answer JSON`);
  }
  return { status: res.status, body: body as T };
}

async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    expect(Date.now() < deadline, `timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out.sort();
}

interface SimScan {
  scanReference: string;
  deleted: boolean;
  facemapDownloads: number;
}

interface SimRequest {
  seq: number;
  method: string;
  path: string;
  status: number | null;
  endpoint: string;
}

const ENDPOINT_WORDS: Record<string, string> = {
  scanStatus: 'status',
  scanDetails: 'retrieval',
  facemap: 'facemap download',
  scanDelete: 'delete',
};

/**
 * The pipeline can pass through STORED between two polls, so the full sequence is told
 * from the timestamps the read API returns.
 */
function timeline(view: EnrollmentView): string {
  expect(view.storedAt && view.jumioDeletedAt && view.activatedAt, 'lifecycle timestamps missing');
  const t0 = Date.parse(view.createdAt);
  const at = (iso: string) => `+${Date.parse(iso) - t0} ms`;
  return (
    `states: PENDING (callback committed) -> STORED ${at(view.storedAt)} (encrypted, written, ` +
    `read back, decrypted, digest compared) -> ACTIVE ${at(view.activatedAt)} ` +
    `(after Jumio's copy was deleted at ${at(view.jumioDeletedAt)})`
  );
}

/** Stands in for the calling service: receives the vault's notifications, verifies each. */
class NotificationReceiver {
  readonly verified: Array<{ id: string; event: { type: string; data: AuthenticationView } }> = [];
  rejected = 0;
  private readonly server: Server;
  private readonly webhook: Webhook;

  constructor(secret: string) {
    this.webhook = new Webhook(secret);
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        try {
          const event = this.webhook.verify(body, headersOf(req.headers)) as {
            type: string;
            data: AuthenticationView;
          };
          this.verified.push({ id: String(req.headers['webhook-id']), event });
          res.statusCode = 204;
        } catch {
          this.rejected += 1;
          res.statusCode = 400;
        }
        res.end();
      });
    });
  }

  async start(): Promise<string> {
    return `http://127.0.0.1:${await listen(this.server)}`;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

function headersOf(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    const value = headers[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

class Demo {
  constructor(
    private readonly container: Container,
    private readonly vault: string,
    private readonly sim: string,
    private readonly token: string,
    private readonly dataDir: string,
    private readonly receiver: NotificationReceiver,
    private readonly notifyUrl: string,
  ) {}

  private sims<T>(method: string, route: string, body?: unknown) {
    return http<T>(method, `${this.sim}/__sim/${route}`, { body }).then((r) => r.body);
  }

  private enrollment(userReference: string) {
    return http<EnrollmentView>(
      'GET',
      `${this.vault}/v1/enrollments/${encodeURIComponent(userReference)}`,
      { token: this.token },
    ).then((r) => r.body);
  }

  private async createScan(body: Record<string, unknown>) {
    return this.sims<{ scanReference: string; facemapBase64: string | null }>(
      'POST',
      'scans',
      body,
    );
  }

  private async deliverCallback(ref: string): Promise<void> {
    const result = await this.sims<{ status: number | null; error?: string }>(
      'POST',
      `scans/${ref}/callback`,
      { url: `${this.vault}/webhooks/jumio` },
    );
    expect(
      result.status === 200,
      `the vault answered the callback with ${result.status ?? result.error ?? 'nothing'}, expected 200`,
    );
    say(
      `   - simulator: sent its NETVERIFYID callback to POST /webhooks/jumio; the vault said 200`,
    );
  }

  /** Polls the read API, printing each state it sees, until `done` holds. */
  private async follow(
    userReference: string,
    ref: string,
    done: (view: EnrollmentView) => boolean,
  ): Promise<EnrollmentView> {
    let last = '';
    return waitUntil(`${userReference} to settle`, async () => {
      const view = await this.enrollment(userReference);
      const seen = `${view.enrollmentReference}:${view.state}`;
      if (seen !== last && view.enrollmentReference === ref) {
        const reason = view.reason ? ` (${view.reason})` : '';
        say(`   - vault: GET /v1/enrollments/${userReference} says ${view.state}${reason}`);
      }
      last = seen;
      return view.enrollmentReference === ref && done(view) ? view : undefined;
    });
  }

  private async jumioRequestsFor(ref: string): Promise<SimRequest[]> {
    const { requests } = await this.sims<{ requests: SimRequest[] }>('GET', 'requests');
    return requests.filter((r) => r.path.includes(ref));
  }

  private async blobFilesOf(ref: string): Promise<string[]> {
    return filesUnder(path.join(this.dataDir, 'blobs', 'facemaps', ref));
  }

  async eligibleOnboarding(): Promise<string> {
    say(`1. An eligible onboarding for ${USER}`);
    const scan = await this.createScan({ customerId: USER });
    expect(scan.facemapBase64, 'the simulator returned no facemap');
    const facemap = Buffer.from(scan.facemapBase64, 'base64');
    const ref = scan.scanReference;
    say(
      `   - simulator: created scan ${ref} (APPROVED_VERIFIED, MATCH, valid; ` +
        `a ${facemap.length}-byte facemap)`,
    );
    await this.deliverCallback(ref);
    const view = await this.follow(USER, ref, (v) => v.state === 'ACTIVE');
    say(`   - ${timeline(view)}`);
    expect(view.facemapBytes === facemap.length, 'the recorded facemap size differs');
    ok(
      `ACTIVE: ${view.facemapBytes} bytes under key ${view.keyId}, ` +
        `ciphertext sha256 ${view.ciphertextSha256?.slice(0, 16)}...`,
    );

    const simView = await this.sims<SimScan>('GET', `scans/${ref}`);
    expect(simView.deleted, 'the scan is not deleted at Jumio');
    expect(simView.facemapDownloads === 1, `facemap downloaded ${simView.facemapDownloads} times`);
    ok(`deleted at Jumio: the simulator says deleted=true, facemap downloaded once`);

    const requests = await this.jumioRequestsFor(ref);
    const order = requests.map((r) => r.endpoint);
    expect(
      JSON.stringify(order) === JSON.stringify(['scanDetails', 'facemap', 'scanDelete']),
      `unexpected requests at Jumio: ${order.join(', ')}`,
    );
    ok(
      `Jumio's request log, in order: ` +
        requests
          .map((r) => `${ENDPOINT_WORDS[r.endpoint] ?? r.endpoint} (${r.method} ${r.status})`)
          .join(' -> '),
    );

    const files = await this.blobFilesOf(ref);
    expect(files.length === 1, `expected one blob file for the scan, found ${files.length}`);
    const file = files[0]!;
    const blob = await readFile(file);
    const digest = createHash('sha256').update(blob).digest('hex');
    expect(digest === view.ciphertextSha256, 'the blob file differs from the recorded ciphertext');
    expect(!blob.includes(facemap), 'the blob file contains the plaintext facemap');
    expect(
      !blob.includes(Buffer.from(scan.facemapBase64)),
      'the blob file contains the facemap in base64',
    );
    ok(
      `blob ${path.relative(this.dataDir, file)}: ${blob.length} bytes, matches the ledger's ` +
        `ciphertext sha256, does not contain the plaintext facemap`,
    );
    facemap.fill(0);
    say();
    return ref;
  }

  async ineligibleOnboarding(): Promise<void> {
    say(`2. An ineligible onboarding for ${OTHER_USER} (DENIED_FRAUD)`);
    const scan = await this.createScan({
      customerId: OTHER_USER,
      verificationStatus: 'DENIED_FRAUD',
    });
    const ref = scan.scanReference;
    say(`   - simulator: created scan ${ref} (DENIED_FRAUD)`);
    await this.deliverCallback(ref);
    const view = await this.follow(OTHER_USER, ref, (v) => v.state !== 'PENDING');
    expect(view.state === 'REJECTED', `expected REJECTED, got ${view.state}`);
    expect(view.facemapBytes === null, 'a rejected enrollment has a facemap');
    ok(`REJECTED with reason ${view.reason ?? '(none)'}`);
    const simView = await this.sims<SimScan>('GET', `scans/${ref}`);
    const requests = await this.jumioRequestsFor(ref);
    expect(simView.facemapDownloads === 0, 'the facemap of a rejected scan was downloaded');
    expect(requests.length === 0, 'the vault called Jumio about a rejected scan');
    expect((await this.blobFilesOf(ref)).length === 0, 'a blob exists for a rejected scan');
    ok('no facemap download, no call to Jumio at all, no blob');
    say();
  }

  async reEnrollment(firstRef: string): Promise<void> {
    say(`3. ${USER} enrolls again: the new facemap supersedes the first`);
    const scan = await this.createScan({ customerId: USER });
    const ref = scan.scanReference;
    say(`   - simulator: created scan ${ref}`);
    await this.deliverCallback(ref);
    const view = await this.follow(USER, ref, (v) => v.state === 'ACTIVE');
    say(`   - ${timeline(view)}`);
    ok(`${USER}'s current enrollment is the new one, ${short(ref)}... (ACTIVE)`);
    const first = await waitUntil('the first blob to be destroyed', async () => {
      const e = await this.container.ledger.transaction((tx) => tx.enrollments.get(firstRef));
      return e?.blobDestroyedAt ? e : undefined;
    });
    expect(first.state === 'SUPERSEDED', `the first enrollment is ${first.state}`);
    ok(`the first enrollment ${short(firstRef)}... is SUPERSEDED, its blob destroyed`);
    expect((await this.blobFilesOf(firstRef)).length === 0, 'the superseded blob still exists');
    expect((await this.blobFilesOf(ref)).length === 1, 'the new blob is missing');
    const simView = await this.sims<SimScan>('GET', `scans/${ref}`);
    expect(simView.deleted, 'the new scan is not deleted at Jumio');
    ok(`blobs on disk: only the new one; the new scan is deleted at Jumio too`);
    expect(view.userReference === USER, 'wrong user reference');
    say();
  }

  async auditTrail(): Promise<void> {
    say('4. The audit trail (read through the ledger)');
    for (const userReference of [USER, OTHER_USER]) {
      const events = await this.container.ledger.transaction((tx) =>
        tx.audit.list({ userReference }),
      );
      say(`   ${userReference}: ${events.length} entries`);
      for (const e of events) {
        const details = Object.entries(e.details)
          .filter(([, v]) => v !== null && v !== undefined)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        const ref = e.enrollmentReference ? short(e.enrollmentReference) : '-';
        say(
          `   #${String(e.id).padStart(3)} ${e.at.toISOString().slice(11, 23)} ` +
            `${e.type.padEnd(27)} ${e.actor.padEnd(6)} ${ref}  ${details}`.trimEnd(),
        );
      }
      const types = events.map((e) => e.type);
      if (userReference === USER) {
        for (const type of [
          'enrollment.received',
          'facemap.stored',
          'enrollment.deleted_at_jumio',
          'enrollment.activated',
          'enrollment.superseded',
          'facemap.destroyed',
        ]) {
          expect(types.includes(type), `no ${type} audit entry for ${userReference}`);
        }
        expect(
          types.indexOf('facemap.stored') < types.indexOf('enrollment.deleted_at_jumio'),
          'Jumio deleted its copy before ours was stored',
        );
      } else {
        expect(types.includes('enrollment.rejected'), `no rejection audited for ${userReference}`);
      }
    }
    say();
  }

  private authentication(ref: string) {
    return http<AuthenticationView>('GET', `${this.vault}/v1/authentications/${ref}`, {
      token: this.token,
    }).then((r) => r.body);
  }

  private async initiate(userReference: string, purpose: string) {
    const { body } = await http<{
      authenticationReference: string;
      redirectUrl?: string;
      state: string;
      expiresAt: string;
    }>('POST', `${this.vault}/v1/authentications`, {
      token: this.token,
      body: { userReference, purpose, locale: 'en', notifyUrl: this.notifyUrl },
      expectStatus: [201],
    });
    expect(body.state === 'INITIATED', `initiate answered ${body.state}`);
    say(
      `   - vault: POST /v1/authentications -> 201 ${body.authenticationReference} ` +
        `(INITIATED until ${body.expiresAt.slice(11, 19)} UTC${body.redirectUrl ? ', with the journey link' : ''})`,
    );
    return body.authenticationReference;
  }

  /** What the person does in Jumio's journey; the simulator then posts its callback. */
  private async complete(ref: string, result: 'PASSED' | 'FAILED' | 'INVALID'): Promise<void> {
    const done = await this.sims<{ state: string; status: number | null }>(
      'POST',
      `authentications/${ref}/complete`,
      { result },
    );
    expect(done.status === 200, `the vault answered the callback with ${done.status}`);
    say(`   - simulator: the person finished the journey: ${result}; its callback got 200`);
  }

  private async settled(ref: string, state: string): Promise<AuthenticationView> {
    const view = await waitUntil(
      `${short(ref)}... to be ${state} and deleted at Jumio`,
      async () => {
        const v = await this.authentication(ref);
        return v.state === state && v.jumioDeletedAt ? v : undefined;
      },
    );
    const atJumio = await this.sims<{ deleted: boolean }>('GET', `authentications/${ref}`);
    expect(atJumio.deleted, 'the authentication is not deleted at Jumio');
    ok(
      `GET /v1/authentications/${short(ref)}... says ${view.state} (source ${view.source}); ` +
        `deleted at Jumio (its liveness images)`,
    );
    return view;
  }

  private async notified(ref: string, state: string): Promise<void> {
    const got = await waitUntil(`the notification for ${short(ref)}...`, async () =>
      this.receiver.verified.find((n) => n.event.data.authenticationReference === ref),
    );
    expect(got.event.type === 'authentication.finalized', `notified ${got.event.type}`);
    expect(got.event.data.state === state, `notified ${got.event.data.state}, expected ${state}`);
    expect(this.receiver.rejected === 0, 'a notification failed its signature check');
    ok(`notification ${got.id}: signature verified (standardwebhooks), says ${state}`);
  }

  async passedAuthentication(): Promise<void> {
    say(`5. ${USER} authenticates with the stored facemap`);
    const before = await this.container.ledger.transaction((tx) => tx.enrollments.findActive(USER));
    const ref = await this.initiate(USER, 'login step-up (demo)');
    const atJumio = await this.sims<{ facemapSha256: string; state: string }>(
      'GET',
      `authentications/${ref}`,
    );
    const scan = await this.sims<{ facemapSha256: string }>(
      'GET',
      `scans/${before?.enrollmentReference}`,
    );
    expect(atJumio.facemapSha256 === scan.facemapSha256, 'Jumio got another facemap');
    ok('Jumio received exactly the enrolled facemap (decrypted for the call, then zeroed)');
    await this.complete(ref, 'PASSED');
    await this.settled(ref, 'PASSED');
    await this.notified(ref, 'PASSED');
    const after = await this.container.ledger.transaction((tx) => tx.enrollments.findActive(USER));
    expect(after?.lastInteractionAt, 'PASSED did not set the last interaction');
    ok(`the enrollment's lastInteractionAt is now ${after.lastInteractionAt.toISOString()}`);
    say();
  }

  async failedAuthentication(): Promise<void> {
    say(`6. ${USER} fails an authentication`);
    const ref = await this.initiate(USER, 'payment step-up (demo)');
    await this.complete(ref, 'FAILED');
    await this.settled(ref, 'FAILED');
    await this.notified(ref, 'FAILED');
    say();
  }

  async supersededAuthentication(): Promise<void> {
    say(`7. Two initiates within 15 minutes: Jumio expires the first`);
    const first = await this.initiate(USER, 'login (demo, abandoned)');
    const second = await this.initiate(USER, 'login (demo, retried)');
    const view = await this.authentication(first);
    expect(view.state === 'EXPIRED', `the first is ${view.state}, expected EXPIRED`);
    ok(`the first, ${short(first)}..., is EXPIRED at once (reason ${view.reason ?? 'none'})`);
    await this.settled(first, 'EXPIRED');
    // Jumio posts the first one's EXPIRED callback on its own; the vault already knew.
    await waitUntil(`Jumio's callback for ${short(first)}...`, async () => {
      const { callbacks } = await this.sims<{ callbacks: Array<{ status: number | null }> }>(
        'GET',
        `authentications/${first}`,
      );
      return callbacks.some((c) => c.status === 200) ? true : undefined;
    });
    const late = await this.authentication(first);
    expect(late.state === 'EXPIRED', 'the first changed state');
    ok(`Jumio's EXPIRED callback for the first arrived (200); it stays EXPIRED`);
    await this.complete(second, 'PASSED');
    await this.settled(second, 'PASSED');
    ok('the second, the one Jumio kept, PASSED');
    say();
  }

  async authenticationAudit(): Promise<void> {
    say('8. The authentication audit trail of ' + USER);
    const events = await this.container.ledger.transaction((tx) =>
      tx.audit.list({ userReference: USER, limit: 1000 }),
    );
    const authEvents = events.filter(
      (e) => e.authenticationReference || e.type === 'facemap.decrypted',
    );
    for (const e of authEvents) {
      const ref = e.authenticationReference ? short(e.authenticationReference) : '-';
      const details = ['state', 'source', 'reason', 'purpose']
        .filter((k) => e.details[k] !== undefined && e.details[k] !== null)
        .map((k) => `${k}=${String(e.details[k])}`)
        .join(' ');
      say(
        `   #${String(e.id).padStart(3)} ${e.type.padEnd(32)} ${e.actor.padEnd(11)} ${ref}  ${details}`.trimEnd(),
      );
    }
    const types = authEvents.map((e) => e.type);
    for (const type of [
      'facemap.decrypted',
      'authentication.initiated',
      'authentication.finalized',
      'authentication.deleted_at_jumio',
    ]) {
      expect(types.includes(type), `no ${type} audit entry`);
    }
    expect(
      types.indexOf('facemap.decrypted') < types.indexOf('authentication.initiated'),
      'the decrypt was not audited before the initiate',
    );
    say();
  }
}

export async function runDemo(options: { keep: boolean }): Promise<number> {
  const { keep } = options;

  const dataDir = await mkdtemp(path.join(tmpdir(), 'facemap-vault-demo-'));
  say('facemap vault demo');
  say(`   data directory: ${dataDir} (${keep ? 'kept' : 'removed at the end; --keep keeps it'})`);

  let container: Container | undefined;
  const server = createServer();
  // The calling service's secret for signed notifications (Standard Webhooks).
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const receiver = new NotificationReceiver(secret);
  try {
    // Listening first: Jumio calls back on the vault's own address (VAULT_PUBLIC_URL).
    const port = await listen(server);
    const vault = `http://127.0.0.1:${port}`;
    const notifyOrigin = await receiver.start();
    // Embedded defaults only: nothing from the caller's environment but LOG_LEVEL.
    const config = loadConfig({
      VAULT_DATA_DIR: dataDir,
      JUMIO_SIMULATOR_PORT: '0',
      ENROLLMENT_WORKER_INTERVAL_MS: '200',
      VAULT_PUBLIC_URL: vault,
      VAULT_NOTIFY_ALLOWED_ORIGINS: notifyOrigin,
      VAULT_NOTIFY_SECRET: secret,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    });
    const logger = createLogger(config.logLevel);
    container = await buildContainer(config, logger);
    server.on('request', createApp(container));
    container.startWorkers();
    expect(container.simulator, 'the embedded Jumio simulator did not start');
    const sim = container.simulator.baseUrl;
    say(`   vault:          ${vault} (PGlite ledger, filesystem blobs, local development key)`);
    say(`   simulator:      ${sim} (Jumio simulator, in-process)`);
    say(`   receiver:       ${notifyOrigin} (a calling service verifying signed notifications)`);
    const tokenFile = path.join(dataDir, ADMIN_TOKEN_FILE);
    const token = (await readFile(tokenFile, 'utf8')).trim();
    say(`   admin token:    ${tokenFile} (generated; not printed)`);
    say();

    const demo = new Demo(container, vault, sim, token, dataDir, receiver, `${notifyOrigin}/hooks`);
    const firstRef = await demo.eligibleOnboarding();
    await demo.ineligibleOnboarding();
    await demo.reEnrollment(firstRef);
    await demo.auditTrail();
    await demo.passedAuthentication();
    await demo.failedAuthentication();
    await demo.supersededAuthentication();
    await demo.authenticationAudit();
    say('demo complete: every expectation held');
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(
      `demo FAILED: ${error instanceof ExpectationFailed ? '' : 'unexpected error: '}${message}`,
    );
    if (!keep) console.error('(run with --keep to inspect the data directory)');
    return 1;
  } finally {
    await closeServer(server);
    await receiver.close();
    await container?.close().catch(() => undefined);
    if (keep) say(`data directory kept: ${dataDir}`);
    else await rm(dataDir, { recursive: true, force: true });
  }
}
