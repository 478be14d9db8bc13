import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import {
  LEGACY_LOCAL_KEY_NAME,
  LOCAL_KEY_NAMESPACE,
  localKeyId,
  localKeyName,
  localKeyring,
} from '../../src/adapters/crypto/keyrings';
import { loadConfig } from '../../src/config';
import { openLedger } from '../../src/adapters/ledger/open';
import { buildBlobStore, buildEnvelope, openUserReferenceHasher } from '../../src/container';
import { loadCursorCodec } from '../../src/core/compliance/cursor';
import { KeyRewrap } from '../../src/core/keys/rewrap';
import { facemapContext, loadUserReferenceHasher } from '../../src/core/enrollment/context';
import { DecryptionError } from '../../src/core/errors';
import type { Clock, EnrollmentRecord, Envelope, Ledger } from '../../src/core/ports';
import { hashToken } from '../../src/http/api-keys';
import { createLogger } from '../../src/logging';
import { newEnrollment } from '../helpers/fixtures';
import { ROOT, runVault, VAULT_CLI } from '../helpers/process';
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

// Vaults start and stop several times, and the CLI runs as its own process: a busy machine.
jest.setTimeout(240_000);

const MAX = 64 * 1024;
const LEGACY_ID = localKeyId(LEGACY_LOCAL_KEY_NAME);
/** The API keys of the test vaults (the CLI needs them too with PostgreSQL). */
const API_KEYS = Object.entries(TOKENS)
  .map(([role, token]) => `${role}-svc:${role}:${hashToken(token)}`)
  .join(',');
const logger = createLogger('silent');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A clock the test moves forward by hand (the orphan sweep's grace period). */
class TestClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

async function writeKey(file: string): Promise<string> {
  await writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return file;
}

/** The settings of the vault and its CLI for one data directory and ledger. */
function settings(dir: string, ledger: LedgerChoice, keys: Record<string, string>) {
  return {
    VAULT_DATA_DIR: dir,
    FACEMAP_MAX_BYTES: String(MAX),
    VAULT_API_KEYS: API_KEYS,
    ORPHAN_SWEEP_GRACE_MS: '60000',
    // The grace must exceed the lease (a store attempt commits only while leased).
    WORKER_LEASE_MS: '30000',
    ...ledger.env,
    ...keys,
  };
}

/** The ledger, blob store, an envelope and the hasher of `env`, in this process. */
async function opened<T>(
  env: Record<string, string>,
  fn: (x: {
    ledger: Ledger;
    store: ReturnType<typeof buildBlobStore>;
    envelope: Envelope;
    hash: (u: string) => string;
  }) => Promise<T>,
): Promise<T> {
  const config = loadConfig(env);
  const envelope = await buildEnvelope(config, logger, { createLocalKey: false });
  const { db, ledger } = await openLedger(config);
  try {
    const hash = await openUserReferenceHasher(config, ledger, envelope);
    return await fn({ ledger, store: buildBlobStore(config), envelope, hash });
  } finally {
    await db.close();
  }
}

/** The enrollments holding a facemap, whole rows (the inventory's view omits blob columns). */
const holding = (ledger: Ledger) =>
  ledger.transaction(async (tx) => {
    const refs = (await tx.inventory.page({}, null, 1000, 1095)).map(
      (i) => i.enrollment.enrollmentReference,
    );
    return (await tx.enrollments.getMany(refs))
      .filter((e) => ['STORED', 'ACTIVE', 'PARKED'].includes(e.state))
      .sort((a, b) => (a.enrollmentReference < b.enrollmentReference ? -1 : 1));
  });

const auditsOf = (ledger: Ledger, type: string) =>
  ledger.transaction(async (tx) => (await tx.audit.page({ type, limit: 1000 })).map((a) => a));

/** Decrypts a row's blob with `envelope`; the plaintext's digest, or the error. */
async function readBack(
  e: EnrollmentRecord,
  x: { store: ReturnType<typeof buildBlobStore>; envelope: Envelope; hash: (u: string) => string },
): Promise<string> {
  const ciphertext = await x.store.get(e.blobKey!);
  const plaintext = await x.envelope.decrypt(
    ciphertext,
    facemapContext(e.enrollmentReference, e.userReference!, x.hash),
  );
  return sha256(plaintext);
}

/**
 * `n` ACTIVE enrollments of distinct people, each with its facemap (random bytes) encrypted
 * by `envelope` and stored as the pipeline stores it. Their plaintext digests, by reference.
 */
async function seedFacemaps(
  ledger: Ledger,
  store: ReturnType<typeof buildBlobStore>,
  envelope: Envelope,
  hash: (u: string) => string,
  n: number,
): Promise<Map<string, { sha256: string; blobKey: string }>> {
  const seeded = new Map<string, { sha256: string; blobKey: string }>();
  const now = new Date();
  for (let i = 0; i < n; i++) {
    const ref = randomUUID();
    const user = `seeded-${i}-${randomBytes(4).toString('hex')}`;
    const plaintext = randomBytes(2048);
    const { ciphertext, keyId } = await envelope.encrypt(
      plaintext,
      facemapContext(ref, user, hash),
    );
    const blobKey = `facemaps/${ref}/${randomBytes(8).toString('hex')}.bin`;
    await store.put(blobKey, ciphertext);
    await ledger.transaction(async (tx) => {
      await tx.enrollments.insert(
        newEnrollment(ref, now, { userReference: user, state: 'ACTIVE', nextAttemptAt: null }),
        now,
      );
      await tx.enrollments.update(
        ref,
        {
          blobKey,
          blobStore: store.location,
          keyId,
          ciphertextSha256: sha256(ciphertext),
          facemapBytes: plaintext.byteLength,
          storedAt: now,
          activatedAt: now,
          jumioDeletedAt: now,
        },
        now,
        null,
      );
    });
    seeded.set(ref, { sha256: sha256(plaintext), blobKey });
  }
  return seeded;
}

/** Runs the compiled `vault rewrap` in its own process (`runVault`), parsing its --json. */
async function rewrapRun(env: Record<string, string>, ...args: string[]) {
  const run = await runVault(['rewrap', '--json', ...args], env);
  let result: Record<string, unknown> = {};
  try {
    result = JSON.parse(run.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`vault rewrap printed no JSON (exit ${run.code}): ${run.stdout}${run.stderr}`);
  }
  return { ...run, result };
}

describe.each(vaultLedgerKinds)('key rotation on %s', (ledgerName, chooseLedger) => {
  let sim: SimulatorClient;

  beforeAll(async () => {
    sim = await startTestSimulator();
  });
  afterAll(async () => {
    await sim?.running.close();
  });

  /** The vault a test runs; stopped after the test whatever happens. */
  let running: TestVault | undefined;
  const start = async (...args: Parameters<typeof startTestVault>) =>
    (running = await startTestVault(...args));
  const stop = async () => {
    const vault = running;
    running = undefined;
    await vault?.stop();
  };
  afterEach(stop);

  /** An eligible onboarding driven to ACTIVE through the pipeline. */
  async function enrol(vault: TestVault, userReference: string) {
    const scan = await sim.createScan({ customerId: userReference });
    expect((await sim.sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`)).status).toBe(
      200,
    );
    let e: EnrollmentRecord | null = null;
    for (let i = 0; i < 100 && e?.state !== 'ACTIVE'; i++) {
      await vault.container.pipeline.runOnce();
      e = await vault.container.ledger.transaction((tx) => tx.enrollments.get(scan.scanReference));
    }
    expect(e?.state).toBe('ACTIVE');
    return { userReference, scanReference: scan.scanReference, sha256: scan.facemapSha256 };
  }

  const keysOf = async (vault: TestVault) =>
    (
      await request(vault.url)
        .get('/v1/keys')
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(200)
    ).body as {
      currentKeyId: string;
      keys: Array<{
        keyId: string;
        status: string;
        facemaps: number;
        vaultKeys: number;
        readable: boolean;
        note?: string;
      }>;
      facemaps: { total: number; underCurrentKey: number; toRewrap: number; unreadable: number };
      vaultKeys: { total: number; underCurrentKey: number; toRewrap: number };
    };

  it('vault rewrap after switching the local key: every facemap under the new key only, old objects gone, authentication works, a second run does nothing', async () => {
    const ledger = await chooseLedger();
    const dir = await mkdtemp(path.join(tmpdir(), 'vault-rotate-'));
    try {
      const keyA = path.join(dir, 'master.key'); // generated on the first start
      const keyB = path.join(dir, 'new.key');
      const idOf = async (file: string) =>
        (await buildEnvelope(loadConfig({ VAULT_LOCAL_KEY_FILE: file }), logger)).keyId;
      const onlyA = settings(dir, ledger, { VAULT_LOCAL_KEY_FILE: keyA });
      const rotated = settings(dir, ledger, {
        VAULT_LOCAL_KEY_FILE: keyB,
        VAULT_LOCAL_PREVIOUS_KEY_FILES: keyA,
      });
      const onlyB = settings(dir, ledger, { VAULT_LOCAL_KEY_FILE: keyB });

      // Three people onboarded under key A.
      let vault = await start(sim, ledger, { env: onlyA }, dir);
      const people: Array<Awaited<ReturnType<typeof enrol>>> = [];
      for (const label of ['a1', 'a2', 'a3']) {
        people.push(await enrol(vault, `rot-${label}-${randomBytes(3).toString('hex')}`));
      }
      await stop();
      const idA = await idOf(keyA);

      // Key B becomes current, A previous: the vault starts (its vault keys are under A)
      // and reports what is left to rewrap; a new onboarding goes under B.
      await writeKey(keyB);
      const idB = await idOf(keyB);
      vault = await start(sim, ledger, { env: rotated }, dir);
      const during = await keysOf(vault);
      expect(during.currentKeyId).toBe(idB);
      expect(during.keys.slice(0, 2)).toEqual([
        { keyId: idB, status: 'current', facemaps: 0, vaultKeys: 0, readable: true },
        expect.objectContaining({ keyId: idA, status: 'previous', facemaps: 3, vaultKeys: 2 }),
      ]);
      expect(during.facemaps).toEqual({ total: 3, underCurrentKey: 0, toRewrap: 3, unreadable: 0 });
      expect(during.vaultKeys).toEqual({ total: 2, underCurrentKey: 0, toRewrap: 2 });
      people.push(await enrol(vault, `rot-b1-${randomBytes(3).toString('hex')}`));
      await stop();

      const before = await opened(rotated, async ({ ledger: l }) => holding(l));
      const oldKeys = before.filter((e) => e.keyId === idA).map((e) => e.blobKey!);
      expect(oldKeys).toHaveLength(3);

      const dry = await rewrapRun(rotated, '--dry-run');
      expect(dry.code).toBe(0);
      expect(dry.result.wouldRewrap).toEqual({
        facemaps: 3,
        vaultKeys: ['cursor-hmac-v1', 'user-reference-hmac-v1'],
      });
      // The dry run changed nothing.
      expect(await opened(rotated, async ({ ledger: l }) => holding(l))).toEqual(before);

      const run = await rewrapRun(rotated);
      expect(run.stderr).not.toMatch(/failed/);
      expect(run.code).toBe(0);
      expect(run.result).toMatchObject({
        complete: true,
        currentKeyId: idB,
        rewrapped: 3,
        failed: [],
        pending: 0,
        unreadable: 0,
        vaultKeys: { rewrapped: ['cursor-hmac-v1', 'user-reference-hmac-v1'], failed: [] },
      });

      await opened(onlyB, async (b) => {
        const after = await holding(b.ledger);
        expect(after.map((e) => e.keyId)).toEqual(after.map(() => idB));
        for (const person of people) {
          const e = after.find((r) => r.enrollmentReference === person.scanReference)!;
          // Readable under B alone, with the plaintext Jumio had.
          expect(await readBack(e, b)).toBe(person.sha256);
          expect(e.ciphertextSha256).toBe(sha256(await b.store.get(e.blobKey!)));
          // One object left per facemap: the new one.
          const listed = await b.store.list(`facemaps/${e.enrollmentReference}/`);
          expect(listed.keys).toEqual([e.blobKey]);
        }
        for (const key of oldKeys) expect(await b.store.exists(key)).toBe(false);
        // Key A alone reads none of them.
        const a = await buildEnvelope(loadConfig(onlyA), logger, { createLocalKey: false });
        for (const e of after) {
          await expect(readBack(e, { ...b, envelope: a })).rejects.toBeInstanceOf(DecryptionError);
        }
        // Audited per facemap, old and new key and object, no bytes.
        const audits = await auditsOf(b.ledger, 'facemap.rewrapped');
        expect(audits).toHaveLength(3);
        for (const audit of audits) {
          const row = after.find((e) => e.enrollmentReference === audit.enrollmentReference)!;
          expect(audit.details).toEqual({
            oldKeyId: idA,
            newKeyId: idB,
            oldBlobKey: before.find((e) => e.enrollmentReference === audit.enrollmentReference)!
              .blobKey,
            newBlobKey: row.blobKey,
            oldBlobStore: row.blobStore,
            blobStore: row.blobStore,
            ciphertextSha256: row.ciphertextSha256,
          });
        }
        const vaultKeyAudits = await auditsOf(b.ledger, 'vault_key.rewrapped');
        expect(
          vaultKeyAudits
            .map((a) => a.details)
            .sort((x, y) => (String(x.name) < String(y.name) ? -1 : 1)),
        ).toEqual([
          { name: 'cursor-hmac-v1', oldKeyId: idA, newKeyId: idB },
          { name: 'user-reference-hmac-v1', oldKeyId: idA, newKeyId: idB },
        ]);
      });

      // A second run finds nothing to do and changes nothing.
      const again = await rewrapRun(rotated);
      expect(again.code).toBe(0);
      expect(again.result).toMatchObject({ rewrapped: 0, vaultKeys: { rewrapped: [] } });
      await opened(rotated, async ({ ledger: l }) => {
        expect(await auditsOf(l, 'facemap.rewrapped')).toHaveLength(3);
        expect(await auditsOf(l, 'vault_key.rewrapped')).toHaveLength(2);
      });

      // Key A retired: the vault starts on B alone, and authentications work.
      vault = await start(sim, ledger, { env: onlyB }, dir);
      try {
        const after = await keysOf(vault);
        expect(after.keys).toEqual([
          { keyId: idB, status: 'current', facemaps: 4, vaultKeys: 2, readable: true },
          // The name local keys had before ids were derived: accepted, nothing under it.
          {
            keyId: LEGACY_ID,
            status: 'previous',
            facemaps: 0,
            vaultKeys: 0,
            readable: true,
            note: 'nothing left under it: it can be retired',
          },
        ]);
        expect(after.facemaps).toEqual({
          total: 4,
          underCurrentKey: 4,
          toRewrap: 0,
          unreadable: 0,
        });
        for (const person of [people[0]!, people[3]!]) {
          const res = await request(vault.url)
            .post('/v1/authentications')
            .set('Authorization', `Bearer ${TOKENS.authenticator}`)
            .send({ userReference: person.userReference, purpose: 'login after key rotation' });
          expect(res.status).toBe(201);
          const atJumio = await sim.authentication(res.body.authenticationReference as string);
          expect(atJumio.facemapSha256).toBe(person.sha256);
        }
        // A facemap under a key this vault was never given: unknown, and said unreadable.
        const retired = 'arn:aws:kms:eu-west-1:111122223333:key/retired-too-early';
        const [ref] = await seedFacemaps(
          vault.container.ledger,
          vault.container.blobs,
          vault.container.envelope,
          await openUserReferenceHasher(
            loadConfig(onlyB),
            vault.container.ledger,
            vault.container.envelope,
          ),
          1,
        ).then((m) => [...m.keys()]);
        await vault.container.ledger.transaction((tx) =>
          tx.enrollments.update(ref!, { keyId: retired }, new Date(), null),
        );
        const unknown = await keysOf(vault);
        expect(unknown.keys.find((k) => k.keyId === retired)).toEqual({
          keyId: retired,
          status: 'unknown',
          facemaps: 1,
          vaultKeys: 0,
          readable: false,
          note: expect.stringMatching(/^not configured: these facemaps cannot be decrypted/),
        });
        expect(unknown.facemaps).toMatchObject({ total: 5, unreadable: 1, toRewrap: 0 });
      } finally {
        await stop();
      }
    } finally {
      await ledger.dispose();
      await removeDir(dir);
    }
  });

  it('a ledger from before key ids were derived: read at start-up, killed midway through vault rewrap and run again, no facemap lost, strays swept', async () => {
    const ledger = await chooseLedger();
    const dir = await mkdtemp(path.join(tmpdir(), 'vault-legacy-'));
    try {
      const keyFile = await writeKey(path.join(dir, 'master.key'));
      const env = settings(dir, ledger, { VAULT_LOCAL_KEY_FILE: keyFile });
      const master = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64');
      const idA = localKeyId(localKeyName(master));
      // What the vault wrote before: every ciphertext under the one shared name.
      const legacy = new EncryptionSdkEnvelope({
        keyring: localKeyring({
          keyName: LEGACY_LOCAL_KEY_NAME,
          keyNamespace: LOCAL_KEY_NAMESPACE,
          masterKey: master,
        }),
        keyId: LEGACY_ID,
        maxPlaintextBytes: MAX,
      });
      const N = 60;
      const seeded = new Map<string, { sha256: string; blobKey: string }>();
      {
        const config = loadConfig(env);
        const { db, ledger: l } = await openLedger(config);
        try {
          const store = buildBlobStore(config);
          const hash = await loadUserReferenceHasher(l, legacy);
          await loadCursorCodec(l, legacy);
          // Vault keys written before their key was recorded.
          await db.query('UPDATE vault_keys SET key_id = NULL');
          for (const [ref, seed] of await seedFacemaps(l, store, legacy, hash, N)) {
            seeded.set(ref, seed);
          }
        } finally {
          await db.close();
        }
      }

      // The vault starts on that ledger with the same key file, and shows the legacy name
      // as a previous key id holding everything.
      let vault = await start(sim, ledger, { env }, dir);
      const keys = await keysOf(vault);
      expect(keys.currentKeyId).toBe(idA);
      expect(keys.keys).toEqual([
        { keyId: idA, status: 'current', facemaps: 0, vaultKeys: 0, readable: true },
        // The vault keys' key, unrecorded before, was found at start-up.
        expect.objectContaining({
          keyId: LEGACY_ID,
          status: 'previous',
          facemaps: N,
          vaultKeys: 2,
        }),
      ]);
      expect(keys.vaultKeys).toEqual({ total: 2, underCurrentKey: 0, toRewrap: 2 });
      await stop();

      // Killed (SIGKILL) while it runs, paced so that it is surely midway.
      const child = spawn(
        process.execPath,
        [VAULT_CLI, 'rewrap', '--json', '--max-rate', '15', '--lease-seconds', '3'],
        {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      const store = buildBlobStore(loadConfig(env));
      let gone = 0;
      let finished = false;
      void exited.then(() => (finished = true));
      for (let i = 0; i < 2000 && gone < 8 && !finished; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        gone = 0;
        for (const { blobKey } of seeded.values()) if (!(await store.exists(blobKey))) gone += 1;
      }
      expect({ finished, stderr: finished ? stderr : '' }).toEqual({ finished: false, stderr: '' });
      child.kill('SIGKILL');
      await exited;

      // Midway: some rewrapped, some not, every one readable.
      await opened(env, async (x) => {
        const rows = await holding(x.ledger);
        expect(rows).toHaveLength(N);
        const ids = new Set(rows.map((e) => e.keyId));
        expect(ids).toEqual(new Set([idA, LEGACY_ID]));
        for (const e of rows)
          expect(await readBack(e, x)).toBe(seeded.get(e.enrollmentReference)!.sha256);
      });

      // Run again: it waits out the dead run's leases and finishes.
      const rerun = await rewrapRun(env, '--lease-seconds', '3');
      expect(rerun.code).toBe(0);
      expect(rerun.result).toMatchObject({ complete: true, failed: [], pending: 0 });
      const second = rerun.result.rewrapped as number;
      expect(second).toBeGreaterThan(0);
      expect(second).toBeLessThan(N);

      let strays: string[] = [];
      await opened(env, async (x) => {
        const rows = await holding(x.ledger);
        expect(rows).toHaveLength(N);
        for (const e of rows) {
          expect(e.keyId).toBe(idA);
          expect(await readBack(e, x)).toBe(seeded.get(e.enrollmentReference)!.sha256);
        }
        for (const { blobKey } of seeded.values())
          expect(await x.store.exists(blobKey)).toBe(false);
        // One audit per facemap across both runs: none rewrapped twice.
        const audits = await auditsOf(x.ledger, 'facemap.rewrapped');
        expect(audits).toHaveLength(N);
        expect(new Set(audits.map((a) => a.enrollmentReference)).size).toBe(N);
        const stored = await x.ledger.transaction((tx) => tx.vaultKeys.list());
        for (const k of stored) expect(k.keyId).toBe(idA);
        // The kill may have left an unrecorded object or two: the orphan sweep's job.
        const held = new Set(rows.map((e) => e.blobKey));
        for (const e of rows) {
          const listed = await x.store.list(`facemaps/${e.enrollmentReference}/`);
          strays.push(...listed.keys.filter((k) => !held.has(k)));
        }
      });
      expect(strays.length).toBeLessThanOrEqual(4);

      const third = await rewrapRun(env);
      expect(third.code).toBe(0);
      expect(third.result).toMatchObject({ rewrapped: 0, vaultKeys: { rewrapped: [] } });

      // The sweep, past its grace period, removes the strays and nothing else.
      const clock = new TestClock();
      vault = await start(sim, ledger, { env, overrides: { clock } }, dir);
      try {
        clock.advance(2 * 3_600_000);
        const { ledger: l } = vault.container;
        await l.transaction((tx) =>
          tx.queues.settle(
            'schedules',
            'orphan-sweep',
            { attempts: 0, nextAttemptAt: clock.now(), lastError: null },
            clock.now(),
          ),
        );
        await vault.container.schedules.runOnce();
        for (const key of strays) expect(await vault.container.blobs.exists(key)).toBe(false);
        const rows = await holding(l);
        for (const e of rows) expect(await vault.container.blobs.exists(e.blobKey!)).toBe(true);
        strays = [];
      } finally {
        await stop();
      }
    } finally {
      await ledger.dispose();
      await removeDir(dir);
    }
  });
  it('in-process: leaves a facemap another worker holds or an authentication reads, each facemap once with two runs at once, a crash on either side of the commit leaves it readable', async () => {
    const ledger = await chooseLedger();
    const dir = await mkdtemp(path.join(tmpdir(), 'vault-rewrap-'));
    try {
      const keyA = await writeKey(path.join(dir, 'a.key'));
      const keyB = await writeKey(path.join(dir, 'b.key'));
      const onlyA = settings(dir, ledger, { VAULT_LOCAL_KEY_FILE: keyA });
      const rotated = settings(dir, ledger, {
        VAULT_LOCAL_KEY_FILE: keyB,
        VAULT_LOCAL_PREVIOUS_KEY_FILES: keyA,
      });
      const clock = new TestClock();
      const vault = await start(sim, ledger, { env: rotated, overrides: { clock } }, dir);
      const { container } = vault;
      const l = container.ledger;
      const hash = await openUserReferenceHasher(loadConfig(rotated), l, container.envelope);
      const envelopeA = await buildEnvelope(loadConfig(onlyA), logger, { createLocalKey: false });
      const seed = (n: number) => seedFacemaps(l, container.blobs, envelopeA, hash, n);
      const rewrap = (options: Partial<ConstructorParameters<typeof KeyRewrap>[1]> = {}) =>
        new KeyRewrap(
          {
            ledger: l,
            blobs: container.compliance!.stores,
            envelope: container.envelope,
            clock,
            logger,
            hashUserReference: hash,
          },
          { actor: 'test', waitMs: 0, concurrency: 2, ...options },
        );
      const row = (ref: string) => l.transaction((tx) => tx.enrollments.get(ref));
      const rewrappedAudits = async () =>
        (await auditsOf(l, 'facemap.rewrapped')).map((a) => a.enrollmentReference!);
      const readable = async (refs: Iterable<string>, seeded: Map<string, { sha256: string }>) => {
        for (const ref of refs) {
          const e = (await row(ref))!;
          expect(
            await readBack(e, { store: container.blobs, envelope: container.envelope, hash }),
          ).toBe(seeded.get(ref)!.sha256);
        }
      };

      // One facemap leased by another worker, one being read by an authentication.
      const first = await seed(6);
      const [held, reading] = [...first.keys()];
      const now = clock.now();
      await l.transaction(async (tx) => {
        await tx.enrollments.update(
          held!,
          { leaseOwner: 'another-worker', leaseUntil: new Date(now.getTime() + 600_000) },
          now,
          null,
        );
        expect(
          await tx.authentications.claimInitiation(reading!, 'an-initiate', now, 600_000),
        ).toBe(true);
      });
      const heldBefore = await row(held!);
      const outcomes: string[] = [];
      const one = await rewrap({ onFacemap: (o) => outcomes.push(o) }).run();
      expect(one).toMatchObject({ rewrapped: 4, failed: [], pending: 2, interrupted: false });
      expect(outcomes.filter((o) => o === 'busy')).toHaveLength(1);
      // The held row is untouched, lease and all; the one being read kept its object.
      expect(await row(held!)).toEqual(heldBefore);
      const readingRow = (await row(reading!))!;
      expect(readingRow.blobKey).toBe(first.get(reading!)!.blobKey);
      expect(readingRow.leaseOwner).toBeNull();
      expect(await container.blobs.exists(readingRow.blobKey!)).toBe(true);
      expect(await container.blobs.list(`facemaps/${reading!}/`)).toEqual({
        keys: [readingRow.blobKey],
      });
      const audited = await rewrappedAudits();
      expect(audited).toHaveLength(4);
      expect(audited).not.toContain(held);
      expect(audited).not.toContain(reading);

      // The authentication is done: its facemap is rewrapped now.
      await l.transaction((tx) => tx.authentications.releaseInitiation(reading!, 'an-initiate'));
      expect(await rewrap().run()).toMatchObject({ rewrapped: 1, pending: 1 });
      expect((await row(reading!))!.keyId).toBe(container.envelope.keyId);

      // Interrupted (Ctrl-C): no new facemap is started, and the next run finishes.
      const interrupted = await seed(5);
      const controller = new AbortController();
      let seen = 0;
      const stopped = await rewrap({
        concurrency: 1,
        signal: controller.signal,
        onFacemap: () => {
          if (++seen === 2) controller.abort();
        },
      }).run();
      expect(stopped).toMatchObject({ interrupted: true, rewrapped: 2, pending: 4 });
      expect(await rewrap().run()).toMatchObject({ interrupted: false, rewrapped: 3, pending: 1 });
      await readable(interrupted.keys(), interrupted);

      // Two runs at once (two operators, or two replicas): each facemap exactly once.
      const second = await seed(10);
      const [x, y] = await Promise.all([rewrap().run(), rewrap().run()]);
      expect(x.rewrapped + y.rewrapped).toBe(10);
      const all = await rewrappedAudits();
      for (const ref of second.keys()) expect(all.filter((r) => r === ref)).toHaveLength(1);
      await readable(second.keys(), second);

      // A crash before the commit: the row keeps its old object, the new one is a stray.
      const third = await seed(2);
      const [before, after] = [...third.keys()];
      const crash = new Error('crash');
      const crashing = (at: 'beforeCommit' | 'afterCommit', ref: string) =>
        rewrap({
          leaseMs: 60_000,
          concurrency: 1,
          limit: 1,
          hooks: {
            [at]: (r: string) => {
              if (r === ref) throw crash;
            },
          },
        });
      const skipOthers = async (ref: string) =>
        l.transaction(async (tx) => {
          for (const other of third.keys()) {
            if (other === ref) continue;
            await tx.enrollments.update(
              other,
              { leaseOwner: 'paused', leaseUntil: new Date(clock.now().getTime() + 600_000) },
              clock.now(),
              null,
            );
          }
        });
      const unpause = (ref: string) =>
        l.transaction((tx) => tx.enrollments.releaseLease(ref, 'paused'));
      await skipOthers(before!);
      await expect(crashing('beforeCommit', before!).run()).rejects.toBe(crash);
      const strayListing = async (ref: string) =>
        (await container.blobs.list(`facemaps/${ref}/`)).keys;
      expect((await row(before!))!.blobKey).toBe(third.get(before!)!.blobKey);
      expect(await strayListing(before!)).toHaveLength(2);
      await readable([before!], third);

      // A crash after the commit: the row has its new object; the old one is the stray.
      await unpause(after!);
      clock.advance(61_000); // the crashed run's lease on `before` has run out
      await skipOthers(after!);
      await expect(crashing('afterCommit', after!).run()).rejects.toBe(crash);
      expect((await row(after!))!.keyId).toBe(container.envelope.keyId);
      expect(await strayListing(after!)).toContain(third.get(after!)!.blobKey);
      await readable([after!], third);

      // The next run finishes `before`; the orphan sweep removes both strays.
      await unpause(before!);
      expect(await rewrap().run()).toMatchObject({ rewrapped: 1, pending: 1 });
      clock.advance(2 * 3_600_000);
      await l.transaction((tx) =>
        tx.queues.settle(
          'schedules',
          'orphan-sweep',
          { attempts: 0, nextAttemptAt: clock.now(), lastError: null },
          clock.now(),
        ),
      );
      await container.schedules.runOnce();
      for (const ref of third.keys()) {
        expect(await strayListing(ref)).toEqual([(await row(ref))!.blobKey]);
      }
      await readable(third.keys(), third);
    } finally {
      await stop();
      await ledger.dispose();
      await removeDir(dir);
    }
  });
  // Two processes on one ledger: PostgreSQL only (PGlite's data directory is one process's).
  (ledgerName === 'postgres' ? it : it.skip)(
    'vault rewrap while the vault serves authentications: none fails, every facemap moves',
    async () => {
      const ledger = await chooseLedger();
      const dir = await mkdtemp(path.join(tmpdir(), 'vault-live-'));
      try {
        const keyA = await writeKey(path.join(dir, 'a.key'));
        const keyB = await writeKey(path.join(dir, 'b.key'));
        const rotated = settings(dir, ledger, {
          VAULT_LOCAL_KEY_FILE: keyB,
          VAULT_LOCAL_PREVIOUS_KEY_FILES: keyA,
        });
        let vault = await start(
          sim,
          ledger,
          { env: settings(dir, ledger, { VAULT_LOCAL_KEY_FILE: keyA }) },
          dir,
        );
        const people = [];
        for (let i = 0; i < 3; i++)
          people.push(await enrol(vault, `live-${i}-${randomBytes(3).toString('hex')}`));
        const hash = await openUserReferenceHasher(
          loadConfig(rotated),
          vault.container.ledger,
          vault.container.envelope,
        );
        await seedFacemaps(
          vault.container.ledger,
          vault.container.blobs,
          vault.container.envelope,
          hash,
          40,
        );
        await stop();
        vault = await start(sim, ledger, { env: rotated }, dir);

        const cli = runVault(
          ['rewrap', '--json', '--max-rate', '20', '--concurrency', '2'],
          rotated,
        );
        let done = false;
        void cli.then(() => (done = true));
        const answers: number[] = [];
        for (let round = 0; round < 3 && !done; round++) {
          for (const person of people) {
            const res = await request(vault.url)
              .post('/v1/authentications')
              .set('Authorization', `Bearer ${TOKENS.authenticator}`)
              .send({ userReference: person.userReference, purpose: 'login during rewrap' });
            answers.push(res.status);
          }
        }
        const run = await cli;
        expect(run.code).toBe(0);
        expect(JSON.parse(run.stdout)).toMatchObject({ complete: true, rewrapped: 43 });
        expect(answers.length).toBeGreaterThan(0);
        expect(answers).toEqual(answers.map(() => 201));
        const failures = await auditsOf(vault.container.ledger, 'facemap.integrity_failed');
        expect(failures).toEqual([]);
        // And after it, on the new key.
        for (const person of people) {
          const res = await request(vault.url)
            .post('/v1/authentications')
            .set('Authorization', `Bearer ${TOKENS.authenticator}`)
            .send({ userReference: person.userReference, purpose: 'login after rewrap' });
          expect(res.status).toBe(201);
          expect(
            (await sim.authentication(res.body.authenticationReference as string)).facemapSha256,
          ).toBe(person.sha256);
        }
      } finally {
        await stop();
        await ledger.dispose();
        await removeDir(dir);
      }
    },
  );
});
