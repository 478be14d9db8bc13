/**
 * Keyring factories for EncryptionSdkEnvelope: a raw AES-256 keyring over a local master
 * key (embedded default, development only) and an AWS KMS keyring (production).
 */
import { createHmac, randomBytes } from 'node:crypto';
import {
  KeyringNode,
  KeyringTraceFlag,
  KmsKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  type EncryptedDataKey,
  type NodeDecryptionMaterial,
  type NodeEncryptionMaterial,
} from '@aws-crypto/client-node';
import {
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
} from '@aws-sdk/client-kms';
import { DependencyError } from '../../core/errors';
import { awsRequestHandler, DEFAULT_AWS_TIMEOUTS, type AwsHttpTimeouts } from '../aws-http';
import { KMS_KEY_ARN } from './kms-arn';

export interface LocalKeyringOptions {
  /** Identifies the key inside the ciphertext; changing it makes old blobs undecryptable. */
  keyName: string;
  keyNamespace: string;
  /** 32 bytes of AES-256 key material. */
  masterKey: Uint8Array;
}

export function localKeyring({
  keyName,
  keyNamespace,
  masterKey,
}: LocalKeyringOptions): KeyringNode {
  if (masterKey.byteLength !== 32) {
    throw new TypeError(`local master key must be 32 bytes, got ${masterKey.byteLength}`);
  }
  if (!keyName || !keyNamespace) {
    throw new TypeError('local keyring needs a keyName and a keyNamespace');
  }
  // The namespace must not look like an AWS KMS provider id, or the SDK would refuse it.
  if (keyNamespace.startsWith('aws-kms')) {
    throw new TypeError('local keyring namespace must not start with "aws-kms"');
  }
  return new LocalAesKeyring(
    new RawAesKeyringNode({
      keyName,
      keyNamespace,
      // Copy so that a caller zeroing its buffer cannot break the keyring (and vice versa).
      unencryptedMasterKey: new Uint8Array(masterKey),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
      // Spec-compliant context ordering (the legacy default sorts by UTF-16 code unit), so
      // other Encryption SDK implementations can decrypt our blobs. Fixed forever once used.
      utf8Sorting: true,
    }),
  );
}

/**
 * The SDK's raw AES keyring, except that the data key of each message is drawn with the
 * synchronous CSPRNG. The raw keyring draws it with the callback form of `randomBytes`,
 * i.e. a round trip through libuv's thread pool for 32 bytes on every encrypt: on a busy
 * machine, waiting for a pool thread to be scheduled costs more than the whole AES-GCM pass
 * over a facemap, and the pool is shared with file I/O. Everything else is the SDK's: the
 * same trace as the raw keyring records when it generates the key itself, then its own
 * wrapping (the encrypted data key, hence the message, is unchanged) and unwrapping.
 */
class LocalAesKeyring extends KeyringNode {
  constructor(private readonly raw: RawAesKeyringNode) {
    super();
  }

  async _onEncrypt(material: NodeEncryptionMaterial): Promise<NodeEncryptionMaterial> {
    if (!material.hasUnencryptedDataKey) {
      material.setUnencryptedDataKey(randomBytes(material.suite.keyLengthBytes), {
        keyName: this.raw.keyName,
        keyNamespace: this.raw.keyNamespace,
        flags: KeyringTraceFlag.WRAPPING_KEY_GENERATED_DATA_KEY,
      });
    }
    return this.raw.onEncrypt(material);
  }

  _onDecrypt(
    material: NodeDecryptionMaterial,
    encryptedDataKeys: EncryptedDataKey[],
  ): Promise<NodeDecryptionMaterial> {
    return this.raw.onDecrypt(material, encryptedDataKeys);
  }
}

/** The namespace of every local key inside its ciphertexts. */
export const LOCAL_KEY_NAMESPACE = 'facemap-vault';

/**
 * The one name every local key had before names were derived from the key: ciphertexts
 * written then carry it, whichever key wrote them, so each configured local key is also
 * offered under it on decrypt (and `vault rewrap` moves them to the derived name).
 */
export const LEGACY_LOCAL_KEY_NAME = 'local-master-key-v1';

/** The key id recorded for a local key name (EncryptedBlob.keyId, enrollments.key_id). */
export const localKeyId = (keyName: string): string => `local:${LOCAL_KEY_NAMESPACE}/${keyName}`;

/**
 * A local key's name, derived from the key itself so that two keys never share one and
 * the ledger can tell which key wrapped what: a fingerprint that reveals nothing of the
 * key (an HMAC under the key of a fixed label, 64 bits shown).
 */
export function localKeyName(masterKey: Uint8Array): string {
  const mac = createHmac('sha256', masterKey).update('facemap-vault key id').digest('hex');
  return `local-${mac.slice(0, 16)}`;
}

export interface KmsKeyringOptions {
  /**
   * Full key ARN. The SDK records the ARN that KMS returns in each ciphertext and, on
   * decrypt, only asks KMS for keys listed here by ARN: an alias would encrypt but never
   * decrypt, so it is refused up front.
   */
  keyId: string;
  client: KMSClient;
  grantTokens?: string[];
}

export interface KmsClientOptions {
  region?: string;
  /** A VPC endpoint (or a test server); the regional endpoint when omitted. */
  endpoint?: string;
  /** Defaults to the SDK's provider chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Connection, request and socket timeouts; the documented defaults when omitted. */
  timeouts?: AwsHttpTimeouts;
}

/** The KMS client, with the same bounded timeouts as every AWS client of the vault. */
export function createKmsClient(options: KmsClientOptions = {}): KMSClient {
  return new KMSClient({
    ...(options.region === undefined ? {} : { region: options.region }),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    requestHandler: awsRequestHandler(options.timeouts ?? DEFAULT_AWS_TIMEOUTS),
  });
}

export function kmsKeyring({ keyId, client, grantTokens }: KmsKeyringOptions): KeyringNode {
  if (!KMS_KEY_ARN.test(keyId)) {
    throw new TypeError(
      'KMS_KEY_ID must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>); aliases and bare ids cannot decrypt',
    );
  }
  const kms = kmsInterfaceFor(client);
  return new KmsKeyringNode({
    generatorKeyId: keyId,
    grantTokens,
    // The SDK asks for a client per region; we always hand back the configured one so that
    // its credentials, endpoint and retry settings apply (and tests can mock it).
    clientProvider: () => kms,
  });
}

/**
 * A keyring that only decrypts, with one KMS key (a previous key during rotation): without
 * a generator, the SDK never encrypts with it; it unwraps only data keys wrapped by it.
 */
export function kmsDecryptKeyring({ keyId, client, grantTokens }: KmsKeyringOptions): KeyringNode {
  if (!KMS_KEY_ARN.test(keyId)) {
    throw new TypeError(`${keyId} is not a KMS key ARN; aliases and bare ids cannot decrypt`);
  }
  const kms = kmsInterfaceFor(client);
  return new KmsKeyringNode({ keyIds: [keyId], grantTokens, clientProvider: () => kms });
}

/**
 * The Encryption SDK calls `generateDataKey/encrypt/decrypt` methods (the v2 / aggregated
 * `KMS` shape) and awaits the result; a bare v3 `KMSClient` only has `send`. This bridges
 * the two, and marks transient KMS failures as DependencyError so the envelope can tell
 * "retry later" from "this ciphertext is not ours".
 */
function kmsInterfaceFor(client: KMSClient) {
  return {
    generateDataKey: async (input: {
      KeyId: string;
      EncryptionContext?: Record<string, string>;
      NumberOfBytes?: number;
      GrantTokens?: string[];
    }) => {
      try {
        return await client.send(new GenerateDataKeyCommand(input));
      } catch (err) {
        // Any failure to get a data key means we cannot encrypt now: never a data problem.
        throw new DependencyError('kms', `GenerateDataKey failed: ${errorName(err)}`, {
          cause: err,
        });
      }
    },
    encrypt: async (input: {
      KeyId: string;
      Plaintext: Uint8Array;
      EncryptionContext?: Record<string, string>;
      GrantTokens?: string[];
    }) => {
      try {
        return await client.send(new EncryptCommand(input));
      } catch (err) {
        throw new DependencyError('kms', `Encrypt failed: ${errorName(err)}`, { cause: err });
      }
    },
    decrypt: async (input: {
      KeyId?: string;
      CiphertextBlob: Uint8Array;
      EncryptionContext?: Record<string, string>;
      GrantTokens?: string[];
    }) => {
      try {
        return await client.send(new DecryptCommand(input));
      } catch (err) {
        if (isTransientKmsError(err)) {
          throw new DependencyError('kms', `Decrypt failed: ${errorName(err)}`, { cause: err });
        }
        // Wrong key, invalid ciphertext, access denied...: the keyring reports "unable to
        // decrypt data key", which the envelope maps to DecryptionError.
        throw err;
      }
    },
  };
}

// Errors after which the same request may succeed later.
const TRANSIENT_KMS_ERRORS = new Set([
  'ThrottlingException',
  'KMSInternalException',
  'DependencyTimeoutException',
  'KeyUnavailableException',
  'LimitExceededException',
  'TimeoutError',
  'RequestTimeout',
]);

function isTransientKmsError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = err as Error & { $fault?: string; $metadata?: unknown; $retryable?: unknown };
  if (TRANSIENT_KMS_ERRORS.has(e.name)) return true;
  if (e.$fault === 'server' || e.$retryable) return true;
  // No service response at all: a network error (ECONNREFUSED, DNS, socket timeout).
  return e.$metadata === undefined;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'unknown error';
}
