import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  DecryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  KMSServiceException,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import {
  LEGACY_LOCAL_KEY_NAME,
  LOCAL_KEY_NAMESPACE,
  localKeyId,
  localKeyName,
  localKeyring,
} from '../../src/adapters/crypto/keyrings';
import { runChecks } from '../../src/cli/doctor';
import { loadConfig } from '../../src/config';
import { openLedger } from '../../src/adapters/ledger/open';
import { buildBlobStore, buildEnvelope } from '../../src/container';
import { facemapContext, loadUserReferenceHasher } from '../../src/core/enrollment/context';
import { ensureKeyProbe } from '../../src/core/keys/vault-keys';
import { hashToken } from '../../src/http/api-keys';
import { createLogger } from '../../src/logging';
import { runVault } from '../helpers/process';
import { type LedgerChoice, removeDir, TOKENS, vaultLedgerKinds } from '../helpers/vault';

jest.setTimeout(120_000);

const MAX = 64 * 1024;
const logger = createLogger('silent');
const API_KEYS = Object.entries(TOKENS)
  .map(([role, token]) => `${role}-svc:${role}:${hashToken(token)}`)
  .join(',');

interface Report {
  ok: boolean;
  checks: Array<{ name: string; status: string; detail: string; fix?: string }>;
}

const OLD = 'arn:aws:kms:eu-central-1:111122223333:key/0ld00000-0000-4000-8000-000000000001';
const DENIED = 'arn:aws:kms:eu-central-1:111122223333:key/de0ed000-0000-4000-8000-000000000002';
const NEW = 'arn:aws:kms:eu-central-1:111122223333:key/0e000000-0000-4000-8000-000000000003';

/**
 * KMS for every KMSClient the vault builds (class-level mock): data keys per key ARN, and
 * AccessDeniedException for Decrypt under `denied` keys.
 */
function fakeKmsEverywhere(denied: Set<string>) {
  const mock = mockClient(KMSClient);
  const issued = new Map<string, { keyId: string; plaintext: Uint8Array }>();
  mock.on(GenerateDataKeyCommand).callsFake((input: GenerateDataKeyCommand['input']) => {
    const plaintext = new Uint8Array(randomBytes(32));
    const blob = new Uint8Array(randomBytes(64));
    issued.set(Buffer.from(blob).toString('hex'), {
      keyId: input.KeyId!,
      plaintext: new Uint8Array(plaintext),
    });
    return { KeyId: input.KeyId, Plaintext: plaintext, CiphertextBlob: blob };
  });
  mock.on(DecryptCommand).callsFake((input: DecryptCommand['input']) => {
    if (denied.has(input.KeyId!)) {
      throw new KMSServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        message: 'User is not authorized to perform: kms:Decrypt',
        $metadata: { httpStatusCode: 400 },
      });
    }
    const entry = issued.get(Buffer.from(input.CiphertextBlob!).toString('hex'));
    if (!entry || entry.keyId !== input.KeyId) throw new Error('InvalidCiphertextException');
    return { KeyId: entry.keyId, Plaintext: new Uint8Array(entry.plaintext) };
  });
  return mock;
}

describe.each(vaultLedgerKinds)('vault doctor: previous keys on %s', (_name, chooseLedger) => {
  let ledger: LedgerChoice;
  let dir: string;
  const env = (keys: Record<string, string>) => ({
    VAULT_DATA_DIR: dir,
    FACEMAP_MAX_BYTES: String(MAX),
    VAULT_API_KEYS: API_KEYS,
    ...ledger.env,
    ...keys,
  });
  const writeKey = async (name: string) => {
    const file = path.join(dir, name);
    await writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    return file;
  };
  const previousKeyLines = (report: Report) =>
    report.checks.filter((c) => c.name === 'previous-key');

  beforeEach(async () => {
    ledger = await chooseLedger();
    dir = await mkdtemp(path.join(tmpdir(), 'vault-doctor-keys-'));
  });
  afterEach(async () => {
    await ledger?.dispose();
    await removeDir(dir);
  });

  it('local keys: each previous key on its own line, the one that fails named', async () => {
    let lostRef = '';
    const keyA = await writeKey('a.key');
    // Key A was current once: its probe is in the ledger. A facemap of the legacy era
    // was written by a key nobody configured any more.
    {
      const config = loadConfig(env({ VAULT_LOCAL_KEY_FILE: keyA }));
      const envelope = await buildEnvelope(config, logger);
      const { db, ledger: l } = await openLedger(config);
      try {
        await ensureKeyProbe(l, envelope);
        const hash = await loadUserReferenceHasher(l, envelope);
        const lost = new EncryptionSdkEnvelope({
          keyring: localKeyring({
            keyName: LEGACY_LOCAL_KEY_NAME,
            keyNamespace: LOCAL_KEY_NAMESPACE,
            masterKey: randomBytes(32),
          }),
          keyId: localKeyId(LEGACY_LOCAL_KEY_NAME),
          maxPlaintextBytes: MAX,
        });
        const ref = randomUUID();
        const { ciphertext, keyId } = await lost.encrypt(
          randomBytes(100),
          facemapContext(ref, 'doctor-user', hash),
        );
        const store = buildBlobStore(config);
        const blobKey = `facemaps/${ref}/00000000.bin`;
        await store.put(blobKey, ciphertext);
        await db.query(
          `INSERT INTO enrollments (enrollment_reference, user_reference, state, blob_key, blob_store, key_id, ciphertext_sha256)
           VALUES ($1, 'doctor-user', 'ACTIVE', $2, $3, $4, $5)`,
          [
            ref,
            blobKey,
            store.location,
            keyId,
            createHash('sha256').update(ciphertext).digest('hex'),
          ],
        );
      } finally {
        await db.close();
      }
    }
    const keyB = await writeKey('b.key');
    const keyC = await writeKey('c.key'); // never wrote anything
    const keyD = await writeKey('d.key');
    await chmod(keyD, 0o644); // readable by others: refused
    const idOf = async (file: string) =>
      localKeyId(localKeyName(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64')));

    const run = await runVault(
      ['doctor', '--json'],
      env({
        VAULT_LOCAL_KEY_FILE: keyB,
        VAULT_LOCAL_PREVIOUS_KEY_FILES: [keyA, keyC, keyD].join(','),
      }),
    );
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as Report;
    const lines = previousKeyLines(report);
    expect(lines.map((l) => l.status)).toEqual(['ok', 'skip', 'fail', 'fail']);
    expect(lines[0]!.detail).toBe(`previous key ${await idOf(keyA)}: decrypts its key probe`);
    expect(lines[1]!.detail).toMatch(
      new RegExp(`^previous key ${await idOf(keyC)} \\(.*c\\.key\\)\\): not verifiable`),
    );
    expect(lines[2]!.detail).toContain(`VAULT_LOCAL_PREVIOUS_KEY_FILES (${keyD})`);
    expect(lines[3]).toMatchObject({
      detail: expect.stringContaining(
        `previous key ${localKeyId(LEGACY_LOCAL_KEY_NAME)} cannot decrypt what it wrapped`,
      ),
      fix: expect.stringMatching(/VAULT_LOCAL_PREVIOUS_KEY_FILES lists the key file/),
    });
    // The server would refuse key D too: the envelope check says so, naming it.
    expect(report.checks.find((c) => c.name === 'envelope')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining(`VAULT_LOCAL_PREVIOUS_KEY_FILES (${keyD})`),
    });

    // The lost facemap restored from a backup written by key A (the legacy name): the
    // legacy line is proven on its data key.
    {
      const config = loadConfig(env({ VAULT_LOCAL_KEY_FILE: keyA }));
      const { db, ledger: l } = await openLedger(config);
      try {
        const hash = await loadUserReferenceHasher(
          l,
          await buildEnvelope(config, logger, { createLocalKey: false }),
        );
        const underA = new EncryptionSdkEnvelope({
          keyring: localKeyring({
            keyName: LEGACY_LOCAL_KEY_NAME,
            keyNamespace: LOCAL_KEY_NAMESPACE,
            masterKey: Buffer.from((await readFile(keyA, 'utf8')).trim(), 'base64'),
          }),
          keyId: localKeyId(LEGACY_LOCAL_KEY_NAME),
          maxPlaintextBytes: MAX,
        });
        const { rows } = await db.query<{ enrollment_reference: string; blob_key: string }>(
          'SELECT enrollment_reference, blob_key FROM enrollments',
        );
        const { ciphertext } = await underA.encrypt(
          randomBytes(100),
          facemapContext(rows[0]!.enrollment_reference, 'doctor-user', hash),
        );
        await buildBlobStore(config).put(rows[0]!.blob_key, ciphertext);
        lostRef = rows[0]!.enrollment_reference;
      } finally {
        await db.close();
      }
    }
    // Without key D, every line passes and nothing names D any more.
    const healthy = await runVault(
      ['doctor'],
      env({ VAULT_LOCAL_KEY_FILE: keyB, VAULT_LOCAL_PREVIOUS_KEY_FILES: keyA }),
    );
    expect(healthy.stdout).toMatch(/^ok +previous-key +previous key .* decrypts its key probe$/m);
    expect(healthy.stdout).toMatch(/^ok +envelope /m);
    expect(healthy.stdout).toContain(
      `previous key ${localKeyId(LEGACY_LOCAL_KEY_NAME)}: unwraps the data key of stored facemap ${lostRef}`,
    );
    expect(healthy.stdout).not.toContain('d.key');
    expect(healthy.code).toBe(0);
  });

  it('KMS keys: a previous key KMS refuses to decrypt with is named, the others pass', async () => {
    const mock = fakeKmsEverywhere(new Set([DENIED]));
    try {
      const kms = (keyId: string, previous: string[] = []) =>
        env({
          KMS_KEY_ID: keyId,
          AWS_REGION: 'eu-central-1',
          KMS_PREVIOUS_KEY_IDS: previous.join(','),
        });
      // OLD and DENIED were each current once: each left its probe.
      for (const keyId of [OLD, DENIED]) {
        const config = loadConfig(kms(keyId));
        const { db, ledger: l } = await openLedger(config);
        try {
          await ensureKeyProbe(l, await buildEnvelope(config, logger));
        } finally {
          await db.close();
        }
      }
      const report = { ok: false, checks: await runChecks(kms(NEW, [OLD, DENIED]), 15_000) };
      const lines = previousKeyLines(report);
      expect(lines).toEqual([
        {
          name: 'previous-key',
          status: 'ok',
          detail: `previous key ${OLD}: decrypts its key probe`,
        },
        {
          name: 'previous-key',
          status: 'fail',
          detail: expect.stringMatching(
            new RegExp(
              `^previous key ${DENIED.replace(/[/.]/g, '\\$&')} cannot decrypt what it wrapped \\(KMS: AccessDeniedException\\)`,
            ),
          ),
          fix: expect.stringMatching(/kms:Decrypt/),
        },
      ]);
      // The round trip under the current key passes: only DENIED is broken.
      expect(report.checks.find((c) => c.name === 'envelope')).toMatchObject({
        status: 'ok',
        detail: `round trip under ${NEW}`,
      });
    } finally {
      mock.restore();
    }
  });
});
