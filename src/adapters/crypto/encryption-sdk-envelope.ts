/**
 * The Envelope port over the AWS Encryption SDK, with any keyring (KMS or local AES).
 *
 * Choices (design "Envelope encryption", invariant 6):
 * - commitment policy REQUIRE_ENCRYPT_REQUIRE_DECRYPT: a ciphertext decrypts to one
 *   plaintext only, whatever data key an attacker supplies;
 * - suite ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY: committing, no ECDSA signature
 *   (the same service encrypts and decrypts, so a signature costs ms and buys nothing);
 * - one frame per facemap (frameLength above the maximum plaintext size);
 * - the encryption context is checked here, because the JS SDK does not;
 * - key rotation: one key encrypts, the previous keys only decrypt (a multi-keyring without
 *   a generator, so a message never carries a data key wrapped by an old key).
 */
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  KeyringNode,
  MultiKeyringNode,
  NodeAlgorithmSuite,
  NodeDefaultCryptographicMaterialsManager,
  type MessageHeader,
  type NodeMaterialsManager,
} from '@aws-crypto/client-node';
import { deserializeFactory } from '@aws-crypto/serialize';
import { finished } from 'node:stream/promises';
import {
  DecryptionError,
  DependencyError,
  EncryptionContextMismatchError,
  PlaintextTooLargeError,
  VaultError,
} from '../../core/errors';
import type { EncryptedBlob, EncryptionContext, Envelope } from '../../core/ports';

export const ENVELOPE_SUITE =
  AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;

/** The SDK's largest frame (serialize Maximum.FRAME_SIZE, 2^32 - 1). */
const SDK_MAX_FRAME_LENGTH = 0xffff_ffff;

/** Message format content type of a single-block (non-framed) body. */
const NON_FRAMED = 1;

/** Keys the SDK reserves for itself; a caller may not set them. */
const RESERVED_CONTEXT_PREFIX = 'aws-crypto-';

/** A key the envelope decrypts with, and the keyring that unwraps what it wrapped. */
export interface DecryptKey {
  keyId: string;
  /** Unwraps the data keys this key wrapped, under every name it had; never encrypts. */
  keyring: KeyringNode;
}

export interface EncryptionSdkEnvelopeOptions {
  /** Encrypts (and, without `decryptKeys`, decrypts) under the current key. */
  keyring: KeyringNode;
  /** Reported as EncryptedBlob.keyId: KMS key ARN or local key id. */
  keyId: string;
  /**
   * Every key accepted on decrypt, the current one first: the current key and the previous
   * ones of a rotation. Default: `keyring` under `keyId` alone. The ids besides `keyId` are
   * the envelope's `previousKeyIds`.
   */
  decryptKeys?: readonly DecryptKey[];
  /** Largest plaintext accepted by encrypt and produced by decrypt (FACEMAP_MAX_BYTES). */
  maxPlaintextBytes: number;
  /** Encrypted data keys allowed per message: 1 normally, 2 while migrating keys. */
  maxEncryptedDataKeys?: number;
}

/** A context that cannot bind a ciphertext to its owner (empty, or with reserved keys). */
export class InvalidEncryptionContextError extends VaultError {
  constructor(reason: string) {
    super('invalid_encryption_context', `invalid encryption context: ${reason}`);
  }
}

const deserialize = deserializeFactory(
  (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(),
  NodeAlgorithmSuite,
);

export class EncryptionSdkEnvelope implements Envelope {
  readonly keyId: string;
  readonly previousKeyIds: readonly string[];
  private readonly maxPlaintextBytes: number;
  private readonly maxEncryptedDataKeys: number;
  private readonly frameLength: number;
  private readonly cmm: NodeMaterialsManager;
  private readonly decryptCmm: NodeMaterialsManager;
  private readonly keyrings: ReadonlyMap<string, KeyringNode>;
  private readonly client: ReturnType<typeof buildClient>;

  constructor({
    keyring,
    keyId,
    decryptKeys = [{ keyId, keyring }],
    maxPlaintextBytes,
    maxEncryptedDataKeys = 1,
  }: EncryptionSdkEnvelopeOptions) {
    if (!Number.isSafeInteger(maxPlaintextBytes) || maxPlaintextBytes < 1) {
      throw new RangeError('maxPlaintextBytes must be a positive integer');
    }
    // The SDK emits a full frame as soon as frameLength bytes are buffered, then an empty
    // final frame; one byte more keeps a maximum-size facemap in a single (final) frame.
    if (maxPlaintextBytes + 1 > SDK_MAX_FRAME_LENGTH) {
      throw new RangeError(`maxPlaintextBytes must be below ${SDK_MAX_FRAME_LENGTH}`);
    }
    if (!Number.isSafeInteger(maxEncryptedDataKeys) || maxEncryptedDataKeys < 1) {
      throw new RangeError('maxEncryptedDataKeys must be a positive integer');
    }
    if (decryptKeys[0]?.keyId !== keyId) {
      throw new TypeError('decryptKeys must start with the current key');
    }
    const ids = decryptKeys.map((k) => k.keyId);
    if (new Set(ids).size !== ids.length) throw new TypeError('decryptKeys lists a key twice');
    this.keyId = keyId;
    this.previousKeyIds = Object.freeze(ids.slice(1));
    this.keyrings = new Map(decryptKeys.map((k) => [k.keyId, k.keyring]));
    this.maxPlaintextBytes = maxPlaintextBytes;
    this.maxEncryptedDataKeys = maxEncryptedDataKeys;
    this.frameLength = maxPlaintextBytes + 1;
    this.cmm = new SuitePinningMaterialsManager(keyring);
    // Tried in order: the current key first, so a rotated vault pays nothing extra for
    // what it wrote itself.
    this.decryptCmm =
      decryptKeys.length === 1
        ? new SuitePinningMaterialsManager(decryptKeys[0]!.keyring)
        : new SuitePinningMaterialsManager(
            new MultiKeyringNode({ children: decryptKeys.map((k) => k.keyring) }),
          );
    this.client = buildClient({
      commitmentPolicy: CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
      maxEncryptedDataKeys,
    });
  }

  async encrypt(plaintext: Uint8Array, context: EncryptionContext): Promise<EncryptedBlob> {
    if (plaintext.byteLength > this.maxPlaintextBytes) {
      throw new PlaintextTooLargeError(plaintext.byteLength, this.maxPlaintextBytes);
    }
    validateContext(context);
    try {
      // A Buffer view, not the caller's Uint8Array: the SDK's streams copy any chunk that is
      // not a Buffer, i.e. the whole facemap, on every call.
      const { result } = await this.client.encrypt(this.cmm, asBuffer(plaintext), {
        suiteId: ENVELOPE_SUITE,
        encryptionContext: { ...context },
        frameLength: this.frameLength,
        plaintextLength: plaintext.byteLength,
      });
      return {
        ciphertext: new Uint8Array(result.buffer, result.byteOffset, result.byteLength),
        keyId: this.keyId,
      };
    } catch (err) {
      if (err instanceof VaultError) throw err;
      // The SDK's messages carry no plaintext, but keep ours fixed and short anyway.
      throw new DependencyError('envelope', 'encryption failed', { cause: err });
    }
  }

  async decrypt(ciphertext: Uint8Array, expected: EncryptionContext): Promise<Uint8Array> {
    validateContext(expected);
    if (ciphertext.byteLength === 0) {
      throw new DecryptionError('ciphertext is empty');
    }
    const message = asBuffer(ciphertext);
    // Read here only to know where the body starts, and to refuse another suite before the
    // SDK unwraps a data key; the SDK parses and authenticates the header itself.
    const headerLength = this.headerLength(message);
    let plaintext: Buffer;
    let header: MessageHeader;
    try {
      ({ plaintext, header } = await this.decryptMessage(message, headerLength));
    } catch (err) {
      throw toDecryptionFailure(err);
    }
    // Defence in depth: the materials manager already refused other suites.
    if (header.suiteId !== ENVELOPE_SUITE) {
      plaintext.fill(0);
      throw new DecryptionError('ciphertext uses an unexpected algorithm suite');
    }
    // maxBodySize bounds each frame, not the message: bound the whole plaintext too.
    if (plaintext.byteLength > this.maxPlaintextBytes) {
      plaintext.fill(0);
      throw new DecryptionError('decrypted plaintext exceeds the configured maximum');
    }
    // The JS SDK ignores bytes after an unsigned message; a stored blob must be exactly
    // the message we wrote, so anything else is corruption.
    if (!expectedMessageLengths(header, plaintext.byteLength).includes(ciphertext.byteLength)) {
      plaintext.fill(0);
      throw new DecryptionError('ciphertext has bytes beyond the end of the message');
    }
    const differing = contextDifferences(header.encryptionContext, expected);
    if (differing.length > 0) {
      // The bytes belong to someone else: do not hand them out, and scrub our copy.
      plaintext.fill(0);
      throw new EncryptionContextMismatchError(differing);
    }
    return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  }

  /**
   * The SDK's decrypt stream, fed the header and the body as two chunks and read without a
   * final concatenation (as `client.decrypt` would do, but without copying the message and
   * the plaintext: its header parser concatenates everything it is given until the header
   * is complete, and `client.decrypt` concatenates the plaintext chunks even when there is
   * one). With one frame per facemap, the plaintext is the one buffer the decipher made.
   */
  private async decryptMessage(
    message: Buffer,
    headerLength: number,
  ): Promise<{ plaintext: Buffer; header: MessageHeader }> {
    const stream = this.client.decryptUnsignedMessageStream(this.decryptCmm, {
      // Per frame: refuses frames larger than a facemap before buffering them.
      maxBodySize: this.maxPlaintextBytes,
    });
    const chunks: Buffer[] = [];
    let header: MessageHeader | undefined;
    stream.once('MessageHeader', (h: MessageHeader) => (header = h));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const done = finished(stream);
    stream.write(message.subarray(0, headerLength));
    stream.end(message.subarray(headerLength));
    try {
      await done;
    } catch (err) {
      for (const chunk of chunks) chunk.fill(0);
      throw err;
    }
    if (header === undefined) throw new Error('no message header');
    if (chunks.length === 1) return { plaintext: chunks[0]!, header };
    const plaintext = Buffer.concat(chunks);
    for (const chunk of chunks) chunk.fill(0);
    return { plaintext, header };
  }

  /** Length of the header (with its authentication tag) of a message under our suite. */
  private headerLength(message: Buffer): number {
    let info: ReturnType<typeof deserialize.deserializeMessageHeader>;
    try {
      info = deserialize.deserializeMessageHeader(message, {
        maxEncryptedDataKeys: this.maxEncryptedDataKeys,
      });
    } catch (err) {
      throw toDecryptionFailure(err);
    }
    if (!info) throw new DecryptionError('ciphertext is shorter than its message header');
    if (info.messageHeader.suiteId !== ENVELOPE_SUITE) {
      throw new DecryptionError('ciphertext uses an unexpected algorithm suite');
    }
    return info.headerLength + info.headerAuth.headerAuthLength;
  }

  /**
   * Unwraps the data key of `ciphertext` with `keyId`'s keyring alone, and zeroes it: a
   * permission check on one key (`vault doctor`) that never decrypts the content.
   */
  async verifyKey(keyId: string, ciphertext: Uint8Array): Promise<void> {
    const keyring = this.keyrings.get(keyId);
    if (keyring === undefined) throw new DecryptionError(`key id ${keyId} is not configured`);
    let header: ReturnType<typeof deserialize.deserializeMessageHeader>;
    try {
      header = deserialize.deserializeMessageHeader(ciphertext, {
        maxEncryptedDataKeys: this.maxEncryptedDataKeys,
      });
    } catch (err) {
      throw new DecryptionError('ciphertext has no valid message header', { cause: err });
    }
    if (!header) throw new DecryptionError('ciphertext is shorter than its message header');
    if (header.messageHeader.suiteId !== ENVELOPE_SUITE) {
      throw new DecryptionError('ciphertext uses an unexpected algorithm suite');
    }
    try {
      const material = await new NodeDefaultCryptographicMaterialsManager(keyring).decryptMaterials(
        {
          suite: header.algorithmSuite as NodeAlgorithmSuite,
          encryptionContext: header.messageHeader.encryptionContext,
          encryptedDataKeys: header.messageHeader.encryptedDataKeys,
        },
      );
      material.zeroUnencryptedDataKey();
    } catch (err) {
      throw toDecryptionFailure(err);
    }
  }
}

/**
 * Refuses, before any data key is unwrapped (no KMS call), a message under any suite but
 * ours: the commitment policy already excludes non-committing suites; this also excludes
 * the signing one, which we never produce.
 */
class SuitePinningMaterialsManager implements NodeMaterialsManager {
  private readonly inner: NodeDefaultCryptographicMaterialsManager;

  constructor(keyring: KeyringNode) {
    this.inner = new NodeDefaultCryptographicMaterialsManager(keyring);
  }

  getEncryptionMaterials: NodeMaterialsManager['getEncryptionMaterials'] = (request) => {
    if (request.suite !== undefined && request.suite.id !== ENVELOPE_SUITE) {
      return Promise.reject(
        new DependencyError('envelope', 'unexpected algorithm suite requested'),
      );
    }
    return this.inner.getEncryptionMaterials(request);
  };

  decryptMaterials: NodeMaterialsManager['decryptMaterials'] = (request) => {
    if (request.suite.id !== ENVELOPE_SUITE) {
      return Promise.reject(new DecryptionError('ciphertext uses an unexpected algorithm suite'));
    }
    return this.inner.decryptMaterials(request);
  };
}

function validateContext(context: EncryptionContext): void {
  const keys = Object.keys(context);
  if (keys.length === 0) {
    // An empty context binds the ciphertext to nobody (invariant 6).
    throw new InvalidEncryptionContextError('it is empty; it must bind the blob to its owner');
  }
  for (const key of keys) {
    const value: unknown = context[key];
    if (key === '' || typeof value !== 'string' || value === '') {
      throw new InvalidEncryptionContextError(`key ${JSON.stringify(key)} or its value is empty`);
    }
    if (key.startsWith(RESERVED_CONTEXT_PREFIX)) {
      throw new InvalidEncryptionContextError(`key ${JSON.stringify(key)} is reserved by the SDK`);
    }
  }
}

/**
 * Names of the keys (never the values: they may be logged) that are missing, extra or
 * different. Nothing is ignored: with our non-signing suite the SDK adds no key of its own
 * (it would add `aws-crypto-public-key` only for signing suites, which we refuse).
 */
function contextDifferences(
  actual: Readonly<Record<string, string>>,
  expected: EncryptionContext,
): string[] {
  const keys = new Set([...Object.keys(actual), ...Object.keys(expected)]);
  const differing: string[] = [];
  for (const key of [...keys].sort()) {
    const a = Object.prototype.hasOwnProperty.call(actual, key) ? actual[key] : undefined;
    const e = Object.prototype.hasOwnProperty.call(expected, key) ? expected[key] : undefined;
    if (a === undefined || e === undefined || a !== e) differing.push(key);
  }
  return differing;
}

/** The same bytes as a Buffer, without copying them. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * Possible lengths of a whole unsigned v2 message (the only kind we accept) with this
 * header and plaintext length, per the Encryption SDK message format.
 */
function expectedMessageLengths(header: MessageHeader, plaintextLength: number): number[] {
  const context = Object.entries(header.encryptionContext);
  const contextLength =
    context.length === 0
      ? 0
      : 2 + context.reduce((n, [k, v]) => n + 2 + utf8Length(k) + 2 + utf8Length(v), 0);
  const keysLength = header.encryptedDataKeys.reduce(
    (n, edk) =>
      n +
      (2 + utf8Length(edk.providerId)) +
      (2 + (edk.rawInfo?.byteLength ?? utf8Length(edk.providerInfo))) +
      (2 + edk.encryptedDataKey.byteLength),
    0,
  );
  // version, suite, message id, context length, context, key count, keys, content type,
  // frame length, commitment (suite data), header auth tag.
  const headerLength = 1 + 2 + 32 + 2 + contextLength + 2 + keysLength + 1 + 4 + 32 + 16;
  if (header.contentType === NON_FRAMED) {
    return [headerLength + 12 + 8 + plaintextLength + 16];
  }
  // Regular frame: sequence number, IV, content, tag. Final frame: end marker, sequence
  // number, IV, content length, content, tag.
  const frame = header.frameLength;
  const full = Math.floor(plaintextLength / frame);
  const lengths = [headerLength + full * (frame + 32) + (plaintextLength - full * frame) + 40];
  // When the plaintext fills its last frame exactly, other SDKs put it in the final frame.
  if (full > 0 && plaintextLength % frame === 0) {
    lengths.push(headerLength + (full - 1) * (frame + 32) + frame + 40);
  }
  return lengths;
}

/**
 * The SDK reports every failure as a plain Error. A transient KMS failure (raised by our
 * KMS bridge as DependencyError) is flattened by the KMS keyring into its message, so it
 * is recognised there; anything else means this ciphertext cannot be decrypted by us.
 */
function toDecryptionFailure(err: unknown): VaultError {
  if (err instanceof VaultError) return err;
  const message = err instanceof Error ? err.message : '';
  const dependency = /\bDependencyError: ([a-z0-9-]+):/.exec(message)?.[1];
  if (dependency !== undefined) {
    return new DependencyError(dependency, 'could not unwrap the data key', { cause: err });
  }
  return new DecryptionError(
    'ciphertext could not be decrypted: tampered, truncated, not ours, or under another key',
    { cause: err },
  );
}
