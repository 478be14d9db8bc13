import { randomBytes } from 'node:crypto';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  MultiKeyringNode,
} from '@aws-crypto/client-node';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import { localKeyring } from '../../src/adapters/crypto/keyrings';
import { DecryptionError } from '../../src/core/errors';
import { describeEnvelopeContract, ownerA } from './envelope.contract';

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
