import { randomBytes } from 'node:crypto';
import {
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
  KMSInternalException,
  KMSServiceException,
  NotFoundException,
} from '@aws-sdk/client-kms';
import { mockClient, type AwsStub } from 'aws-sdk-client-mock';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import { kmsDecryptKeyring, kmsKeyring } from '../../src/adapters/crypto/keyrings';
import { DecryptionError, DependencyError, PlaintextTooLargeError } from '../../src/core/errors';
import { describeEnvelopeContract, describeRotationContract, ownerA } from './envelope.contract';

const MAX = 64 * 1024;
const KEY_ARN = 'arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const OTHER_KEY_ARN =
  'arn:aws:kms:eu-central-1:111122223333:key/9999abcd-12ab-34cd-56ef-1234567890ab';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type KmsMock = AwsStub<any, any, any>;

interface FakeKms {
  client: KMSClient;
  mock: KmsMock;
  /** CiphertextBlobs that GenerateDataKey handed out, in order. */
  issued: Uint8Array[];
}

function newClient(): KMSClient {
  return new KMSClient({
    region: 'eu-central-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
}

const serviceError = { $metadata: {} };

/** What the SDK raises when KMS throttles: no dedicated class, a named client fault. */
function throttled(): KMSServiceException {
  return new KMSServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    message: 'Rate exceeded',
    $metadata: { httpStatusCode: 400 },
  });
}

/**
 * Behaves like KMS for the given keys: GenerateDataKey returns a random data key and an
 * opaque blob; Decrypt returns that data key only for the same blob, the key that issued it
 * and the same encryption context (KMS authenticates the context as AAD), and
 * InvalidCiphertextException otherwise. `denied` keys answer AccessDeniedException.
 */
function fakeKms(keyArns: string | string[], client = newClient(), denied: string[] = []): FakeKms {
  const arns = Array.isArray(keyArns) ? keyArns : [keyArns];
  const mock = mockClient(client);
  const keys = new Map<string, { keyArn: string; plaintext: Uint8Array; context: string }>();
  const issued: Uint8Array[] = [];
  const contextKey = (c: Record<string, string> | undefined) =>
    JSON.stringify(Object.entries(c ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));

  mock.on(GenerateDataKeyCommand).callsFake((input: GenerateDataKeyCommand['input']) => {
    if (!arns.includes(input.KeyId!)) {
      throw new NotFoundException({ message: 'no such key', ...serviceError });
    }
    const plaintext = new Uint8Array(randomBytes(input.NumberOfBytes ?? 32));
    const blob = new Uint8Array(randomBytes(80));
    keys.set(Buffer.from(blob).toString('hex'), {
      keyArn: input.KeyId!,
      plaintext: new Uint8Array(plaintext),
      context: contextKey(input.EncryptionContext),
    });
    issued.push(blob);
    // Fresh copies: the SDK zeroes the Plaintext buffer it is given.
    return { KeyId: input.KeyId, Plaintext: plaintext, CiphertextBlob: new Uint8Array(blob) };
  });
  mock.on(DecryptCommand).callsFake((input: DecryptCommand['input']) => {
    if (denied.includes(input.KeyId!)) {
      throw new KMSServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        message: 'not authorized to perform kms:Decrypt',
        $metadata: { httpStatusCode: 400 },
      });
    }
    const entry = keys.get(Buffer.from(input.CiphertextBlob ?? []).toString('hex'));
    if (
      !entry ||
      input.KeyId !== entry.keyArn ||
      entry.context !== contextKey(input.EncryptionContext)
    ) {
      throw new InvalidCiphertextException({ message: 'invalid ciphertext', ...serviceError });
    }
    return { KeyId: entry.keyArn, Plaintext: new Uint8Array(entry.plaintext) };
  });
  return { client, mock, issued };
}

function envelopeOver(kms: { client: KMSClient }, keyId = KEY_ARN, maxPlaintextBytes = MAX) {
  return new EncryptionSdkEnvelope({
    keyring: kmsKeyring({ keyId, client: kms.client }),
    keyId,
    maxPlaintextBytes,
  });
}

describeEnvelopeContract('AWS KMS keyring (mocked KMSClient)', () => {
  const kms = fakeKms(KEY_ARN);
  return {
    maxPlaintextBytes: MAX,
    create: (options) => envelopeOver(kms, KEY_ARN, options?.maxPlaintextBytes ?? MAX),
    // The same key ARN, but KMS says the blob was not encrypted under it.
    createWithWrongKey: () => {
      const client = newClient();
      mockClient(client)
        .on(DecryptCommand)
        .rejects(new IncorrectKeyException({ message: 'incorrect key', ...serviceError }));
      return envelopeOver({ client });
    },
  };
});

describe('EncryptionSdkEnvelope with a KMS keyring: calls to KMS', () => {
  let kms: FakeKms;
  let envelope: EncryptionSdkEnvelope;

  beforeEach(() => {
    kms = fakeKms(KEY_ARN);
    envelope = envelopeOver(kms);
  });

  it('calls GenerateDataKey and Decrypt with the configured key id and the context', async () => {
    const plaintext = new Uint8Array(randomBytes(1000));
    const { ciphertext, keyId } = await envelope.encrypt(plaintext, ownerA);
    expect(keyId).toBe(KEY_ARN);

    const generate = kms.mock.commandCalls(GenerateDataKeyCommand);
    expect(generate).toHaveLength(1);
    expect(generate[0]?.args[0].input).toEqual({
      KeyId: KEY_ARN,
      EncryptionContext: { ...ownerA },
      NumberOfBytes: 32,
    });

    expect(await envelope.decrypt(ciphertext, ownerA)).toEqual(plaintext);
    const decrypt = kms.mock.commandCalls(DecryptCommand);
    expect(decrypt).toHaveLength(1);
    const input = decrypt[0]?.args[0].input;
    expect(input?.KeyId).toBe(KEY_ARN);
    expect(input?.EncryptionContext).toEqual({ ...ownerA });
    expect(input?.CiphertextBlob).toEqual(kms.issued[0]);
  });

  it('does not call KMS for an oversized plaintext', async () => {
    await expect(envelope.encrypt(new Uint8Array(MAX + 1), ownerA)).rejects.toBeInstanceOf(
      PlaintextTooLargeError,
    );
    expect(kms.mock.calls()).toHaveLength(0);
  });

  it('does not call KMS for a message whose key is not the configured one', async () => {
    const other = fakeKms(OTHER_KEY_ARN);
    const { ciphertext } = await envelopeOver(other, OTHER_KEY_ARN).encrypt(
      new Uint8Array(10),
      ownerA,
    );
    await expect(envelope.decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(DecryptionError);
    expect(kms.mock.commandCalls(DecryptCommand)).toHaveLength(0);
  });

  it('reports a throttled Decrypt as a retryable DependencyError, not a bad blob', async () => {
    const { ciphertext } = await envelope.encrypt(new Uint8Array(10), ownerA);
    kms.mock.on(DecryptCommand).rejects(throttled());
    const err = await envelope.decrypt(ciphertext, ownerA).catch((e) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as DependencyError).dependency).toBe('kms');
  });

  it('reports a network failure on Decrypt as a DependencyError', async () => {
    const { ciphertext } = await envelope.encrypt(new Uint8Array(10), ownerA);
    kms.mock
      .on(DecryptCommand)
      .rejects(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    await expect(envelope.decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(DependencyError);
  });

  it('reports a failing GenerateDataKey as a DependencyError', async () => {
    kms.mock
      .on(GenerateDataKeyCommand)
      .rejects(new KMSInternalException({ message: 'internal', ...serviceError }));
    const err = await envelope.encrypt(new Uint8Array(10), ownerA).catch((e) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect((err as DependencyError).dependency).toBe('kms');
  });

  it('refuses a key alias or bare key id at construction', () => {
    for (const keyId of ['alias/facemaps', '1234abcd-12ab-34cd-56ef-1234567890ab']) {
      expect(() => kmsKeyring({ keyId, client: kms.client })).toThrow(
        /KMS_KEY_ID must be a key ARN/,
      );
    }
  });
});

/** The new key current, the old one (or several) accepted for decrypt only. */
function rotatedOver(kms: { client: KMSClient }, current: string, previous: string[]) {
  return new EncryptionSdkEnvelope({
    keyring: kmsKeyring({ keyId: current, client: kms.client }),
    keyId: current,
    decryptKeys: [
      { keyId: current, keyring: kmsKeyring({ keyId: current, client: kms.client }) },
      ...previous.map((keyId) => ({
        keyId,
        keyring: kmsDecryptKeyring({ keyId, client: kms.client }),
      })),
    ],
    maxPlaintextBytes: MAX,
  });
}

describeRotationContract('two AWS KMS key ARNs (mocked KMSClient)', () => {
  const kms = fakeKms([KEY_ARN, OTHER_KEY_ARN]);
  return {
    oldKeyId: KEY_ARN,
    newKeyId: OTHER_KEY_ARN,
    createOld: () => envelopeOver(kms, KEY_ARN),
    createNewOnly: () => envelopeOver(kms, OTHER_KEY_ARN),
    createRotated: () => rotatedOver(kms, OTHER_KEY_ARN, [KEY_ARN]),
  };
});

describe('KMS key rotation: calls to KMS', () => {
  const OLD = KEY_ARN;
  const NEW = OTHER_KEY_ARN;
  let kms: FakeKms;

  beforeEach(() => {
    kms = fakeKms([OLD, NEW]);
  });

  it('generates data keys under the new key only, and decrypts old blobs with the old key', async () => {
    const { ciphertext: old } = await envelopeOver(kms, OLD).encrypt(new Uint8Array(10), ownerA);
    kms.mock.resetHistory();
    const rotated = rotatedOver(kms, NEW, [OLD]);

    const fresh = await rotated.encrypt(new Uint8Array(10), ownerA);
    expect(kms.mock.commandCalls(GenerateDataKeyCommand).map((c) => c.args[0].input.KeyId)).toEqual(
      [NEW],
    );
    // One data key per message: nothing else wrapped it under the old key.
    expect(kms.mock.commandCalls(EncryptCommand)).toHaveLength(0);

    await rotated.decrypt(old, ownerA);
    await rotated.decrypt(fresh.ciphertext, ownerA);
    // Each blob is unwrapped by the key that wrapped it, one Decrypt each, never guessed.
    expect(kms.mock.commandCalls(DecryptCommand).map((c) => c.args[0].input.KeyId)).toEqual([
      OLD,
      NEW,
    ]);
  });

  it('a retired key is not asked: no KMS call for a blob under a key not configured', async () => {
    const { ciphertext } = await envelopeOver(kms, OLD).encrypt(new Uint8Array(10), ownerA);
    kms.mock.resetHistory();
    await expect(envelopeOver(kms, NEW).decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(
      DecryptionError,
    );
    expect(kms.mock.commandCalls(DecryptCommand)).toHaveLength(0);
  });

  it('a previous key KMS refuses is a DecryptionError, and verifyKey names it by failing', async () => {
    const { ciphertext } = await envelopeOver(kms, OLD).encrypt(new Uint8Array(10), ownerA);
    const denying = fakeKms([OLD, NEW], newClient(), [OLD]);
    const rotated = rotatedOver(denying, NEW, [OLD]);
    await expect(rotated.decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(DecryptionError);
    await expect(rotated.verifyKey(OLD, ciphertext)).rejects.toBeInstanceOf(DecryptionError);
  });

  it('a throttled previous key is a retryable DependencyError, not a bad blob', async () => {
    const { ciphertext } = await envelopeOver(kms, OLD).encrypt(new Uint8Array(10), ownerA);
    const rotated = rotatedOver(kms, NEW, [OLD]);
    kms.mock.on(DecryptCommand).rejects(throttled());
    await expect(rotated.decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(DependencyError);
    await expect(rotated.verifyKey(OLD, ciphertext)).rejects.toBeInstanceOf(DependencyError);
  });

  it('verifyKey unwraps the data key only: one Decrypt, the content is never decrypted', async () => {
    const { ciphertext } = await envelopeOver(kms, OLD).encrypt(new Uint8Array(10), ownerA);
    kms.mock.resetHistory();
    await rotatedOver(kms, NEW, [OLD]).verifyKey(OLD, ciphertext);
    expect(kms.mock.calls()).toHaveLength(1);
    expect(kms.mock.commandCalls(DecryptCommand)[0]?.args[0].input.KeyId).toBe(OLD);
  });
});
