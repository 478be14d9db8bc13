/**
 * The local master key of the embedded default (no KMS_KEY_ID): a development convenience,
 * never a production key store.
 *
 * File format: the 32 key bytes in standard base64 (44 characters, `=`-padded) and an
 * optional trailing newline. Text survives copy-paste and secret managers; raw bytes
 * would not. Generate one with `head -c 32 /dev/urandom | base64 > master.key`.
 */
import { randomBytes } from 'node:crypto';
import { VaultError } from '../../core/errors';
import type { Logger } from '../../core/ports';
import { createSecretFile, readSecretFile, SecretFileError } from '../secret-file';

const KEY_BYTES = 32;
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/**
 * The key file is unusable; the message names the setting (VAULT_LOCAL_KEY_FILE, or
 * VAULT_LOCAL_PREVIOUS_KEY_FILES) and the file, so operators find it.
 */
export class LocalKeyError extends VaultError {
  constructor(file: string, reason: string, options: { cause?: unknown; setting?: string } = {}) {
    const { setting = 'VAULT_LOCAL_KEY_FILE', ...rest } = options;
    super('local_key_invalid', `${setting} (${file}): ${reason}`, rest);
  }
}

export interface LocalKeyOptions {
  /**
   * Why the key must already exist (the ledger holds data under it): then a missing file
   * is refused with this reason instead of replaced by a new key that decrypts nothing.
   */
  mustExist?: string;
}

/**
 * Reads the key at `file`; when there is none, generates one with mode 0600 and warns
 * loudly. Refuses a file that is unreadable, malformed, or readable by group or others.
 */
export async function loadOrCreateLocalKey(
  file: string,
  logger: Logger,
  options: LocalKeyOptions = {},
): Promise<Uint8Array> {
  const existing = await readKeyFile(file);
  if (existing) return existing;
  if (options.mustExist !== undefined) {
    throw new LocalKeyError(file, `is missing, so no new key is generated: ${options.mustExist}`);
  }

  const key = randomBytes(KEY_BYTES);
  const created = await createKeyFile(file, key);
  if (!created) {
    // Another process (a second replica on the same volume) won the race: use its key.
    key.fill(0);
    const theirs = await readKeyFile(file);
    if (!theirs) throw new LocalKeyError(file, 'file vanished right after it was created');
    return theirs;
  }
  logger.warn(
    { keyFile: file, developmentOnly: true },
    'GENERATED A NEW LOCAL MASTER KEY: for development only. Anyone who can read this file can ' +
      'decrypt every stored facemap, and losing it loses them all. Set KMS_KEY_ID in production.',
  );
  const out = new Uint8Array(key);
  key.fill(0);
  return out;
}

/**
 * Reads the key at `file` and never creates one: checks that must change nothing, and the
 * previous keys of a rotation (`setting` VAULT_LOCAL_PREVIOUS_KEY_FILES), which must exist.
 */
export async function loadLocalKey(
  file: string,
  setting = 'VAULT_LOCAL_KEY_FILE',
): Promise<Uint8Array> {
  const key = await readKeyFile(file, setting);
  if (!key) {
    throw new LocalKeyError(
      file,
      setting === 'VAULT_LOCAL_KEY_FILE'
        ? 'does not exist (the vault creates it on first start)'
        : 'does not exist (a previous key is never generated: restore the file)',
      { setting },
    );
  }
  return key;
}

/** The key, or undefined when the file does not exist. */
async function readKeyFile(
  file: string,
  setting = 'VAULT_LOCAL_KEY_FILE',
): Promise<Uint8Array | undefined> {
  // A key file is 45 bytes: never read more than 128.
  const content = await readSecretFile(file, 128).catch((err: unknown) => {
    throw asLocalKeyError(file, err, setting);
  });
  if (content === undefined) return undefined;
  const { text, bytesRead } = content;
  // Never echo the content: it is (or is close to) key material.
  if (!BASE64_KEY.test(text)) {
    throw new LocalKeyError(
      file,
      `must hold ${KEY_BYTES} bytes in base64 (44 characters); got ${bytesRead} bytes that are not`,
      { setting },
    );
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== KEY_BYTES) {
    throw new LocalKeyError(file, `must decode to ${KEY_BYTES} bytes, got ${key.length}`, {
      setting,
    });
  }
  const out = new Uint8Array(key);
  key.fill(0);
  return out;
}

/** Creates the key file exclusively (see createSecretFile); false when it already existed. */
async function createKeyFile(file: string, key: Buffer): Promise<boolean> {
  return createSecretFile(file, key.toString('base64')).catch((err: unknown) => {
    throw asLocalKeyError(file, err);
  });
}

/** The shared file checks' reason, under this file's own error class and message prefix. */
function asLocalKeyError(file: string, err: unknown, setting?: string): unknown {
  if (!(err instanceof SecretFileError)) return err;
  return new LocalKeyError(file, err.reason, {
    setting,
    ...('cause' in err ? { cause: err.cause } : {}),
  });
}
