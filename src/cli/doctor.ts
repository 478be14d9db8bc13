import { envelopeRoundTrip } from '../core/readiness';
import { randomBytes, randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { appliedMigrations, migrations } from '../adapters/ledger/migrations';
import { ConfigError, loadConfig, type PreviousKeys, type VaultConfig } from '../config';
import { LEGACY_LOCAL_KEY_NAME, localKeyId, localKeyName } from '../adapters/crypto/keyrings';
import { loadLocalKey } from '../adapters/crypto/local-key';
import { openLedger } from '../adapters/ledger/open';
import { buildBlobStore, buildEnvelope, buildRemoteJumio } from '../container';
import { BlobStores } from '../core/blobs';
import { VaultError } from '../core/errors';
import { verifyKey } from '../core/keys/vault-keys';
import { JumioNotFoundError, JumioUnauthorizedError } from '../core/jumio';
import { CidrAllowlist } from '../http/callback-origin';
import { createLogger } from '../logging';
import type { Io } from './io';

/**
 * `vault doctor`: checks a deployment's configuration and every dependency the way the
 * server uses them, without starting the server or its workers, and says what to fix.
 * Everything it touches it leaves as it was: migrations are compared, not applied; the
 * blob probe is deleted; no local key is generated; Jumio gets a read of a random scan.
 */

export type CheckStatus = 'ok' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to change, for a failed check. */
  fix?: string;
}

interface Check {
  name: string;
  run(): Promise<string | { skip: string }>;
}

/** A failed check: what was found, and what to change. */
class CheckFailure extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/**
 * A readable cause, with the causes it wraps (an adapter's "S3 put failed" says less than
 * the ECONNREFUSED under it). Node's connection errors can be an AggregateError with no
 * message of its own.
 */
function reason(error: unknown, depth = 0): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return reason(error.errors[0], depth);
  }
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  let message = error.message || error.name;
  // A system error's code (ECONNREFUSED) says more than its message; the vault's own
  // errors already say theirs in words.
  if (typeof code === 'string' && !(error instanceof VaultError) && !message.includes(code)) {
    message += ` (${code})`;
  }
  const cause = (error as { cause?: unknown }).cause;
  return cause !== undefined && depth < 3 ? `${message}: ${reason(cause, depth + 1)}` : message;
}

async function failWith<T>(work: Promise<T>, what: string, fix: string): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof CheckFailure) throw error;
    throw new CheckFailure(`${what}: ${reason(error)}`, fix);
  }
}

/** Ledger reachable and its migrations exactly the ones this build knows. */
function ledgerCheck(config: VaultConfig): Check {
  const db = config.database;
  const where = db.kind === 'postgres' ? 'DATABASE_URL' : `the embedded ledger at ${db.dataDir}`;
  const fix =
    db.kind === 'postgres'
      ? 'check DATABASE_URL and that PostgreSQL accepts connections from here'
      : 'check VAULT_DATA_DIR and its permissions (and that no other process has it open)';
  return {
    name: 'ledger',
    async run() {
      // Opening an embedded ledger that does not exist would create an empty one.
      if (db.kind === 'pglite' && !(await stat(db.dataDir).catch(() => undefined))) {
        throw new CheckFailure(
          `no embedded ledger at ${db.dataDir}`,
          'check VAULT_DATA_DIR, or create the ledger with `vault migrate`',
        );
      }
      const opened = await failWith(
        openLedger(config, { migrate: false }),
        `cannot open ${where}`,
        fix,
      );
      try {
        const applied = await failWith(appliedMigrations(opened.db), `cannot read ${where}`, fix);
        const known = migrations.map((m) => m.version).sort((a, b) => a - b);
        const unknown = applied.filter((v) => !known.includes(v));
        if (unknown.length > 0) {
          throw new CheckFailure(
            `the ledger has migration(s) ${unknown.join(', ')} that this vault does not know`,
            'a newer vault migrated it: run that version or a later one',
          );
        }
        const pending = known.filter((v) => !applied.includes(v));
        if (pending.length > 0) {
          throw new CheckFailure(
            `migration(s) ${pending.join(', ')} not applied`,
            'run `vault migrate` (the vault also applies them at start-up)',
          );
        }
        return `${opened.db.kind}, migrations current (version ${known.at(-1) ?? 0})`;
      } finally {
        await opened.db.close().catch(() => undefined);
      }
    },
  };
}

/** Write, read back, delete and confirm the deletion of a probe object. */
function blobsCheck(config: VaultConfig): Check {
  const b = config.blobs;
  const where =
    b.kind === 's3'
      ? `s3 bucket ${b.bucket}${b.prefix ? ` prefix ${b.prefix}` : ''}${b.endpoint ? ` at ${b.endpoint}` : ''}`
      : `filesystem ${b.root}`;
  const fix =
    b.kind === 's3'
      ? 'check S3_BUCKET, S3_ENDPOINT, AWS_REGION and that the credentials may put, get and delete objects there'
      : 'check that VAULT_DATA_DIR/blobs is writable by this user';
  return {
    name: 'blobs',
    async run() {
      const blobs = buildBlobStore(config);
      const key = `doctor/probe-${randomUUID()}`;
      const probe = randomBytes(32);
      await failWith(blobs.put(key, probe), `${where}: writing a probe failed`, fix);
      try {
        const back = await failWith(blobs.get(key), `${where}: reading the probe failed`, fix);
        if (!probe.equals(Buffer.from(back))) {
          throw new CheckFailure(`${where}: the probe read back differs`, fix);
        }
      } finally {
        await failWith(blobs.delete(key), `${where}: deleting the probe failed`, fix);
      }
      if (await failWith(blobs.exists(key), `${where}: checking the deletion failed`, fix)) {
        throw new CheckFailure(`${where}: the probe is still there after its deletion`, fix);
      }
      return `${where}: probe written, read back and deleted`;
    },
  };
}

const silent = createLogger('silent');

/** The readiness probe's context: it names no person. */

/**
 * What the envelope checks share, opened once on first use and closed after the last
 * check: the envelope itself, and the ledger and blob stores the previous-key checks read.
 */
function envelopeContext(config: VaultConfig) {
  let envelope: ReturnType<typeof buildEnvelope> | undefined;
  let ledger: ReturnType<typeof openLedger> | undefined;
  return {
    envelope: () => (envelope ??= buildEnvelope(config, silent, { createLocalKey: false })),
    ledger: () =>
      (ledger ??= (async () => {
        const db = config.database;
        // Opening an embedded ledger that does not exist would create an empty one.
        if (db.kind === 'pglite' && !(await stat(db.dataDir).catch(() => undefined))) {
          throw new Error(`no embedded ledger at ${db.dataDir}`);
        }
        return openLedger(config, { migrate: false });
      })()),
    async close() {
      const opened = await ledger?.catch(() => undefined);
      await opened?.db.close().catch(() => undefined);
    },
  };
}

/** KMS's reasons for refusing a Decrypt, as the SDK reports them. */
const KMS_REFUSAL =
  /\b(AccessDeniedException|DisabledException|KMSInvalidStateException|NotFoundException|IncorrectKeyException|InvalidCiphertextException|KeyUnavailableException)\b/;

/** Fix for a previous key that cannot decrypt what it wrapped. */
const PREVIOUS_KEY_FIX =
  'give the vault decrypt permission on that key again (KMS: kms:Decrypt in the key policy ' +
  'or a grant, key enabled; local: VAULT_LOCAL_PREVIOUS_KEY_FILES lists the key file that ' +
  'wrote it); retire a previous key only after vault rewrap has moved everything off it';

/**
 * One check per previous key (rotation): it must still decrypt what it wrapped, shown on
 * its key probe or, for a key older than probes, on the data key of one facemap stored
 * under it (never its content). Each is checked with an envelope of the current key and
 * that key alone, so a broken key fails its own line only. The name all local keys had
 * before key ids were derived from the key is checked while a previous local key is set.
 */
function previousKeyChecks(
  config: VaultConfig,
  shared: ReturnType<typeof envelopeContext>,
): Check[] {
  const { previous } = config.envelope;
  const none = { kmsKeyIds: [], localKeyFiles: [] };
  const keys: Array<{
    label: string;
    keys: () => Promise<PreviousKeys>;
    keyId: () => Promise<string>;
  }> = [
    ...previous.kmsKeyIds.map((arn) => ({
      label: arn,
      keys: async () => ({ ...none, kmsKeyIds: [arn] }),
      keyId: async () => arn,
    })),
    ...previous.localKeyFiles.map((file) => ({
      label: `VAULT_LOCAL_PREVIOUS_KEY_FILES (${file})`,
      keys: async () => ({ ...none, localKeyFiles: [file] }),
      keyId: async () => {
        const key = await failWith(
          loadLocalKey(file, 'VAULT_LOCAL_PREVIOUS_KEY_FILES'),
          'unreadable',
          'restore the previous key file (32 bytes in base64, mode 0600): it is never generated',
        );
        const id = localKeyId(localKeyName(key));
        key.fill(0);
        return id;
      },
    })),
    ...(previous.localKeyFiles.length > 0
      ? [
          {
            label: 'the name local keys had before key ids were derived from the key',
            // Every previous local key may have written under it; an unreadable one fails
            // its own line.
            keys: async () => {
              const readable = await Promise.all(
                previous.localKeyFiles.map((file) =>
                  loadLocalKey(file, 'VAULT_LOCAL_PREVIOUS_KEY_FILES').then(
                    (key) => {
                      key.fill(0);
                      return [file];
                    },
                    () => [],
                  ),
                ),
              );
              return { ...none, localKeyFiles: readable.flat() };
            },
            keyId: async () => localKeyId(LEGACY_LOCAL_KEY_NAME),
          },
        ]
      : []),
  ];
  return keys.map((key) => ({
    name: 'previous-key',
    async run() {
      const keyId = await key.keyId();
      const envelope = await failWith(
        buildEnvelope(
          { ...config, envelope: { ...config.envelope, previous: await key.keys() } },
          silent,
          { createLocalKey: false },
        ),
        `previous key ${keyId}: the envelope cannot be built`,
        'see the envelope check',
      );
      const { ledger } = await failWith(
        shared.ledger(),
        'cannot read the ledger',
        'see the ledger check',
      );
      const blobs = new BlobStores(buildBlobStore(config));
      const shown = await verifyKey({ ledger, blobs, envelope }, keyId).catch((error: unknown) => {
        // The SDK folds KMS's answer (and stack traces) into one message: name the answer.
        const code = KMS_REFUSAL.exec(reason(error))?.[1];
        throw new CheckFailure(
          `previous key ${keyId} cannot decrypt what it wrapped${code ? ` (KMS: ${code})` : ''}: ` +
            reason(error).split('\n')[0],
          PREVIOUS_KEY_FIX,
        );
      });
      if (shown.verifiedBy === 'probe') return `previous key ${keyId}: decrypts its key probe`;
      if (shown.verifiedBy === 'facemap') {
        return `previous key ${keyId}: unwraps the data key of stored facemap ${shown.enrollmentReference}`;
      }
      return {
        skip: `previous key ${keyId} (${key.label}): not verifiable: no key probe (older than probes) and no stored facemap under it`,
      };
    },
  }));
}

/** Envelope checks: a round trip under the current key, then one line per previous key. */
function envelopeChecks(config: VaultConfig): { checks: Check[]; close(): Promise<void> } {
  const shared = envelopeContext(config);
  const fix =
    config.envelope.kind === 'kms'
      ? 'check KMS_KEY_ID, AWS_REGION and that the credentials may GenerateDataKey and Decrypt with it'
      : 'point VAULT_LOCAL_KEY_FILE at the key the vault encrypted with (32 bytes in base64, mode 0600)';
  const roundTrip: Check = {
    name: 'envelope',
    async run() {
      const envelope = await failWith(shared.envelope(), 'the envelope cannot be built', fix);
      await failWith(envelopeRoundTrip(envelope), `round trip under ${envelope.keyId} failed`, fix);
      return `round trip under ${envelope.keyId}`;
    },
  };
  return { checks: [roundTrip, ...previousKeyChecks(config, shared)], close: shared.close };
}

/** An authenticated read that changes nothing: a random scan must be 404, not 401/403. */
function jumioCheck(config: VaultConfig): Check {
  return {
    name: 'jumio',
    async run() {
      const jumio = config.jumio;
      if (jumio.mode !== 'remote') {
        return { skip: 'no Jumio configured: the embedded simulator (development only)' };
      }
      const samePair =
        jumio.adminCredentials.token === jumio.credentials.token &&
        jumio.adminCredentials.secret === jumio.credentials.secret;
      const pairs = samePair
        ? [{ names: 'JUMIO_API_TOKEN/JUMIO_API_SECRET', config: jumio }]
        : [
            {
              names: 'JUMIO_API_TOKEN/JUMIO_API_SECRET',
              config: { ...jumio, adminCredentials: jumio.credentials },
            },
            { names: 'JUMIO_ADMIN_API_TOKEN/JUMIO_ADMIN_API_SECRET', config: jumio },
          ];
      for (const pair of pairs) {
        const client = buildRemoteJumio(pair.config, config.facemapMaxBytes, {
          retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
        });
        try {
          await client.getScanStatus(randomUUID());
        } catch (error) {
          if (error instanceof JumioNotFoundError) continue;
          if (error instanceof JumioUnauthorizedError) {
            throw new CheckFailure(
              `${jumio.baseUrl} refused ${pair.names} (HTTP ${error.status})`,
              error.status === 403
                ? `check ${pair.names} and JUMIO_USER_AGENT ("Company App/1.2.3")`
                : `check ${pair.names} (and that JUMIO_REGION or JUMIO_BASE_URL is their region)`,
            );
          }
          throw new CheckFailure(
            `${jumio.baseUrl}: ${reason(error)}`,
            'check JUMIO_REGION or JUMIO_BASE_URL and the network path to Jumio',
          );
        } finally {
          await client.close().catch(() => undefined);
        }
      }
      return `${jumio.baseUrl} accepts ${pairs.map((p) => p.names).join(' and ')}`;
    },
  };
}

function callbackAllowlistCheck(config: VaultConfig, env: NodeJS.ProcessEnv): Check {
  const fix = 'set JUMIO_CALLBACK_ALLOWED_CIDRS (`vault callback-ips` prints the current line)';
  return {
    name: 'callback-allowlist',
    async run() {
      const entries = config.callbackAllowedCidrs;
      if (entries.length === 0) {
        throw new CheckFailure('empty: every Jumio callback would be refused', fix);
      }
      let allowlist: CidrAllowlist;
      try {
        allowlist = new CidrAllowlist(entries);
      } catch (error) {
        throw new CheckFailure(reason(error), fix);
      }
      const source = env.JUMIO_CALLBACK_ALLOWED_CIDRS?.trim()
        ? 'JUMIO_CALLBACK_ALLOWED_CIDRS'
        : config.jumio.mode === 'remote' && !config.jumio.baseUrl.startsWith('http:')
          ? `Jumio's published list for ${env.JUMIO_REGION?.trim() || 'US'}`
          : 'loopback, for a local simulator';
      return `${allowlist.entries.length} entr${allowlist.entries.length === 1 ? 'y' : 'ies'} (${source})`;
    },
  };
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CheckFailure(
            `no answer within ${ms / 1000} s`,
            'check that the service is reachable from here (or raise --timeout)',
          ),
        ),
      ms,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export const CHECK_NAMES = [
  'config',
  'ledger',
  'blobs',
  'envelope',
  'jumio',
  'callback-allowlist',
] as const;

/** Runs every check in order, each bounded by `timeoutMs`; never throws. */
export async function runChecks(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CheckResult[]> {
  let config: VaultConfig;
  try {
    config = loadConfig(env);
  } catch (error) {
    const problems = error instanceof ConfigError ? error.problems : [reason(error)];
    return [
      {
        name: 'config',
        status: 'fail',
        detail: problems.join('; '),
        fix: 'set or correct the variables named (see the README configuration table)',
      },
      ...CHECK_NAMES.slice(1).map((name) => ({
        name,
        status: 'skip' as const,
        detail: 'not checked: the configuration is invalid',
      })),
    ];
  }
  const results: CheckResult[] = [
    {
      name: 'config',
      status: 'ok',
      detail:
        `ledger ${config.database.kind}, blobs ${config.blobs.kind}, envelope ${config.envelope.kind}, ` +
        `Jumio ${config.jumio.mode === 'remote' ? config.jumio.baseUrl : 'embedded simulator'}`,
    },
  ];
  const envelope = envelopeChecks(config);
  const checks = [
    ledgerCheck(config),
    blobsCheck(config),
    ...envelope.checks,
    jumioCheck(config),
    callbackAllowlistCheck(config, env),
  ];
  try {
    await runEach(checks, results, timeoutMs);
  } finally {
    await envelope.close();
  }
  return results;
}

async function runEach(checks: Check[], results: CheckResult[], timeoutMs: number): Promise<void> {
  for (const check of checks) {
    try {
      const outcome = await withTimeout(check.run(), timeoutMs);
      results.push(
        typeof outcome === 'string'
          ? { name: check.name, status: 'ok', detail: outcome }
          : { name: check.name, status: 'skip', detail: outcome.skip },
      );
    } catch (error) {
      results.push(
        error instanceof CheckFailure
          ? { name: check.name, status: 'fail', detail: error.message, fix: error.fix }
          : { name: check.name, status: 'fail', detail: reason(error), fix: 'see the message' },
      );
    }
  }
}

const LABEL: Record<CheckStatus, string> = { ok: 'ok', fail: 'FAIL', skip: 'skip' };

export async function doctor(
  options: { json: boolean; timeoutMs: number },
  io: Io,
): Promise<number> {
  const results = await runChecks(io.env, options.timeoutMs);
  const ok = results.every((r) => r.status !== 'fail');
  if (options.json) {
    io.out(JSON.stringify({ ok, checks: results }));
  } else {
    const width = Math.max(...results.map((r) => r.name.length));
    for (const r of results) {
      const fix = r.fix ? ` -> ${r.fix}` : '';
      io.out(`${LABEL[r.status].padEnd(4)}  ${r.name.padEnd(width)}  ${r.detail}${fix}`);
    }
    const failed = results.filter((r) => r.status === 'fail').length;
    io.out(failed === 0 ? 'doctor: all checks passed' : `doctor: ${failed} check(s) failed`);
  }
  return ok ? 0 : 1;
}
