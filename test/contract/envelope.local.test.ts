import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  MultiKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import {
  LEGACY_LOCAL_KEY_NAME,
  LOCAL_KEY_NAMESPACE,
  localKeyId,
  localKeyring,
} from '../../src/adapters/crypto/keyrings';
import { loadConfig } from '../../src/config';
import { buildEnvelope } from '../../src/container';
import { createLogger } from '../../src/logging';
import { DecryptionError } from '../../src/core/errors';
import { describeEnvelopeContract, describeRotationContract, ownerA } from './envelope.contract';

const MAX = 64 * 1024;
const keyName = 'master-key-1';
const keyNamespace = 'facemap-vault-local';

function keyringFor(masterKey: Uint8Array, name = keyName) {
  return localKeyring({ keyName: name, keyNamespace, masterKey });
}

describeEnvelopeContract('local AES-256 keyring', () => {
  const masterKey = randomBytes(32);
  return {
    maxPlaintextBytes: MAX,
    create: (options) =>
      new EncryptionSdkEnvelope({
        keyring: keyringFor(masterKey),
        keyId: keyName,
        maxPlaintextBytes: options?.maxPlaintextBytes ?? MAX,
      }),
    // Same name and namespace, other bytes: the keyring tries it, and authentication fails.
    createWithWrongKey: () =>
      new EncryptionSdkEnvelope({
        keyring: keyringFor(randomBytes(32)),
        keyId: keyName,
        maxPlaintextBytes: MAX,
      }),
  };
});

describeRotationContract('local AES-256 keys', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const single = (key: Uint8Array, name: string) =>
    new EncryptionSdkEnvelope({
      keyring: keyringFor(key, name),
      keyId: name,
      maxPlaintextBytes: MAX,
    });
  return {
    oldKeyId: 'key-old',
    newKeyId: 'key-new',
    createOld: () => single(oldKey, 'key-old'),
    createNewOnly: () => single(newKey, 'key-new'),
    createRotated: () =>
      new EncryptionSdkEnvelope({
        keyring: keyringFor(newKey, 'key-new'),
        keyId: 'key-new',
        decryptKeys: [
          { keyId: 'key-new', keyring: keyringFor(newKey, 'key-new') },
          { keyId: 'key-old', keyring: keyringFor(oldKey, 'key-old') },
        ],
        maxPlaintextBytes: MAX,
      }),
  };
});

describe('EncryptionSdkEnvelope with a local keyring: SDK-level refusals', () => {
  const masterKey = randomBytes(32);
  const envelope = new EncryptionSdkEnvelope({
    keyring: keyringFor(masterKey),
    keyId: keyName,
    maxPlaintextBytes: MAX,
  });

  it('refuses a message under the signing committing suite, even with the right key', async () => {
    const { encrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    const { result } = await encrypt(keyringFor(masterKey), randomBytes(100), {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
      encryptionContext: { ...ownerA },
    });
    const err = await envelope.decrypt(result, ownerA).catch((e) => e);
    expect(err).toBeInstanceOf(DecryptionError);
    expect((err as Error).message).toMatch(/algorithm suite/);
  });

  it('refuses a non-committing message (commitment policy)', async () => {
    const { encrypt } = buildClient(CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT);
    const { result } = await encrypt(keyringFor(masterKey), randomBytes(100), {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA256,
      encryptionContext: { ...ownerA },
    });
    await expect(envelope.decrypt(result, ownerA)).rejects.toBeInstanceOf(DecryptionError);
  });

  it('decrypts a message of our suite in small frames (as the benchmark baseline makes)', async () => {
    const { encrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    const plaintext = new Uint8Array(randomBytes(20_000));
    const { result } = await encrypt(keyringFor(masterKey), plaintext, {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
      encryptionContext: { ...ownerA },
      frameLength: 4096,
    });
    expect(await envelope.decrypt(result, ownerA)).toEqual(plaintext);
  });

  it('reads and writes the plain SDK format: a raw AES keyring and client.encrypt/decrypt', async () => {
    // What the envelope wrote before it fed the SDK's streams itself and drew the data key
    // synchronously, and what any other Encryption SDK client reads.
    const raw = new RawAesKeyringNode({
      keyName,
      keyNamespace,
      unencryptedMasterKey: new Uint8Array(masterKey),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
      utf8Sorting: true,
    });
    const sdk = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    const plaintext = new Uint8Array(randomBytes(MAX));
    const { result } = await sdk.encrypt(raw, plaintext, {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
      encryptionContext: { ...ownerA },
      frameLength: MAX + 1,
    });
    expect(await envelope.decrypt(result, ownerA)).toEqual(plaintext);

    const { ciphertext } = await envelope.encrypt(plaintext, ownerA);
    const out = await sdk.decrypt(raw, ciphertext);
    expect(new Uint8Array(out.plaintext)).toEqual(plaintext);
    expect(out.messageHeader.encryptionContext).toEqual(ownerA);
    expect(out.messageHeader.encryptedDataKeys).toHaveLength(1);
    expect(out.messageHeader.encryptedDataKeys[0]!.providerId).toBe(keyNamespace);
  });

  it('refuses many small frames that add up to more than the maximum', async () => {
    const { encrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    const { result } = await encrypt(keyringFor(masterKey), randomBytes(MAX + 1), {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
      encryptionContext: { ...ownerA },
      frameLength: 4096,
    });
    await expect(envelope.decrypt(result, ownerA)).rejects.toBeInstanceOf(DecryptionError);
  });

  describe('key migration: two encrypted data keys', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const migrating = new MultiKeyringNode({
      generator: keyringFor(newKey, 'master-key-2'),
      children: [keyringFor(oldKey, 'master-key-1')],
    });

    it('is refused by default (maxEncryptedDataKeys 1), on encrypt and on decrypt', async () => {
      const strict = new EncryptionSdkEnvelope({
        keyring: migrating,
        keyId: 'master-key-2',
        maxPlaintextBytes: MAX,
      });
      await expect(strict.encrypt(randomBytes(10), ownerA)).rejects.toThrow();

      const lenient = new EncryptionSdkEnvelope({
        keyring: migrating,
        keyId: 'master-key-2',
        maxPlaintextBytes: MAX,
        maxEncryptedDataKeys: 2,
      });
      const { ciphertext } = await lenient.encrypt(randomBytes(10), ownerA);
      const oldOnly = new EncryptionSdkEnvelope({
        keyring: keyringFor(oldKey, 'master-key-1'),
        keyId: 'master-key-1',
        maxPlaintextBytes: MAX,
      });
      await expect(oldOnly.decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(DecryptionError);
    });

    it('works with maxEncryptedDataKeys 2: either key decrypts', async () => {
      const lenient = new EncryptionSdkEnvelope({
        keyring: migrating,
        keyId: 'master-key-2',
        maxPlaintextBytes: MAX,
        maxEncryptedDataKeys: 2,
      });
      const plaintext = new Uint8Array(randomBytes(10));
      const { ciphertext } = await lenient.encrypt(plaintext, ownerA);
      for (const [key, name] of [
        [oldKey, 'master-key-1'],
        [newKey, 'master-key-2'],
      ] as const) {
        const single = new EncryptionSdkEnvelope({
          keyring: keyringFor(key, name),
          keyId: name,
          maxPlaintextBytes: MAX,
          maxEncryptedDataKeys: 2,
        });
        expect(await single.decrypt(ciphertext, ownerA)).toEqual(plaintext);
      }
    });
  });

  describe('construction', () => {
    it('refuses a master key that is not 32 bytes', () => {
      expect(() => keyringFor(randomBytes(16))).toThrow(/32 bytes/);
    });

    it('refuses a maximum the SDK cannot hold in one frame', () => {
      for (const maxPlaintextBytes of [0, -1, 1.5, 2 ** 32]) {
        expect(
          () =>
            new EncryptionSdkEnvelope({
              keyring: keyringFor(masterKey),
              keyId: 'k',
              maxPlaintextBytes,
            }),
        ).toThrow(RangeError);
      }
    });
  });
});

describe('buildEnvelope with local keys: ids derived from the key, the legacy name still read', () => {
  let dir: string;
  const files: Record<string, string> = {};
  const keys: Record<string, Buffer> = {};
  const logger = createLogger('silent');

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-keys-'));
    for (const name of ['a', 'b', 'c']) {
      keys[name] = randomBytes(32);
      files[name] = path.join(dir, `${name}.key`);
      await writeFile(files[name], `${keys[name].toString('base64')}\n`, { mode: 0o600 });
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const build = (current: string, previous: string[] = []) =>
    buildEnvelope(
      loadConfig({
        VAULT_DATA_DIR: dir,
        VAULT_LOCAL_KEY_FILE: current,
        VAULT_LOCAL_PREVIOUS_KEY_FILES: previous.join(','),
        FACEMAP_MAX_BYTES: String(MAX),
      }),
      logger,
      { createLocalKey: false },
    );
  /** What this vault wrote before key ids were derived: every key named the same. */
  const legacy = (key: Uint8Array) =>
    new EncryptionSdkEnvelope({
      keyring: localKeyring({
        keyName: LEGACY_LOCAL_KEY_NAME,
        keyNamespace: LOCAL_KEY_NAMESPACE,
        masterKey: key,
      }),
      keyId: localKeyId(LEGACY_LOCAL_KEY_NAME),
      maxPlaintextBytes: MAX,
    });

  it('names each key by a fingerprint of it: stable, distinct, not the key', async () => {
    const a = await build(files.a!);
    expect(a.keyId).toMatch(/^local:facemap-vault\/local-[0-9a-f]{16}$/);
    expect((await build(files.a!)).keyId).toBe(a.keyId);
    expect((await build(files.b!)).keyId).not.toBe(a.keyId);
    expect(a.keyId).not.toContain(keys.a!.toString('hex').slice(0, 16));
    // The legacy name is accepted for decrypt only, as a previous key id.
    expect(a.previousKeyIds).toEqual([localKeyId(LEGACY_LOCAL_KEY_NAME)]);
    const rotated = await build(files.b!, [files.a!]);
    expect(rotated.keyId).toBe((await build(files.b!)).keyId);
    expect(rotated.previousKeyIds).toEqual([a.keyId, localKeyId(LEGACY_LOCAL_KEY_NAME)]);
  });

  it('decrypts what was written under the legacy name, by the current or a previous key', async () => {
    const plaintext = new Uint8Array(randomBytes(500));
    const { ciphertext, keyId } = await legacy(keys.a!).encrypt(plaintext, ownerA);
    expect(keyId).toBe('local:facemap-vault/local-master-key-v1');
    expect(await (await build(files.a!)).decrypt(ciphertext, ownerA)).toEqual(plaintext);
    const rotated = await build(files.b!, [files.c!, files.a!]);
    expect(await rotated.decrypt(ciphertext, ownerA)).toEqual(plaintext);
    await rotated.verifyKey(localKeyId(LEGACY_LOCAL_KEY_NAME), ciphertext);
    // Without key a, nothing reads it.
    await expect((await build(files.b!, [files.c!])).decrypt(ciphertext, ownerA)).rejects.toThrow(
      DecryptionError,
    );
    // New ciphertexts carry the current key's own name.
    expect((await rotated.encrypt(plaintext, ownerA)).keyId).toBe(rotated.keyId);
  });

  it('refuses a previous key file that is missing, open to others, or the current key again', async () => {
    const missing = path.join(dir, 'missing.key');
    await expect(build(files.a!, [missing])).rejects.toThrow(
      `VAULT_LOCAL_PREVIOUS_KEY_FILES (${missing}): does not exist (a previous key is never generated`,
    );
    await expect(stat(missing)).rejects.toThrow();
    const open = path.join(dir, 'open.key');
    await writeFile(open, `${randomBytes(32).toString('base64')}\n`);
    await chmod(open, 0o644);
    await expect(build(files.a!, [open])).rejects.toThrow(
      new RegExp(`VAULT_LOCAL_PREVIOUS_KEY_FILES \\(${open}\\): .*(group|others)`),
    );
    const copy = path.join(dir, 'copy-of-a.key');
    await writeFile(copy, `${keys.a!.toString('base64')}\n`, { mode: 0o600 });
    await expect(build(files.a!, [copy])).rejects.toThrow(
      `VAULT_LOCAL_PREVIOUS_KEY_FILES (${copy}): holds the same key as another configured key file`,
    );
  });
});
