import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { migrations, runMigrations } from '../../src/adapters/ledger/migrations';
import { loadLedgerConfig } from '../../src/config';
import { openDatabase, openLedger } from '../../src/adapters/ledger/open';
import { parseApiKeys } from '../../src/http/api-keys';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server';
import { newEnrollment } from '../helpers/fixtures';
import { runCommand, runVault } from '../helpers/process';
import { startS3rver } from '../helpers/s3rver';

/**
 * The operator CLI as operators run it: the compiled `vault` (dist/, built once per jest
 * run by the global setup), in its own process, with only PATH, HOME and the given env.
 */

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const LATEST = Math.max(...migrations.map((m) => m.version));
const COMMANDS = [
  'migrate',
  'replay',
  'hash-token',
  'callback-ips',
  'doctor',
  'demo',
  'inventory',
  'purge',
  'audit',
  'rewrap',
];

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'vault-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The ledger of a data directory, migrated, in this process. */
async function withLedger<T>(
  dataDir: string,
  fn: (ledger: Awaited<ReturnType<typeof openLedger>>['ledger']) => Promise<T>,
): Promise<T> {
  const { db, ledger } = await openLedger(loadLedgerConfig({ VAULT_DATA_DIR: dataDir }));
  try {
    return await fn(ledger);
  } finally {
    await db.close();
  }
}

describe('vault: usage and exit codes', () => {
  it('--help on the program and on each command exits 0 and describes it', async () => {
    const top = await runVault(['--help']);
    expect(top.code).toBe(0);
    for (const command of COMMANDS) expect(top.stdout).toContain(command);
    for (const command of COMMANDS) {
      const run = await runVault([command, '--help']);
      expect({ command, code: run.code }).toEqual({ command, code: 0 });
      expect(run.stdout).toContain(`Usage: vault ${command}`);
    }
  });

  it.each([
    [['nonsense'], /unknown command 'nonsense'/],
    [['doctor', '--bogus'], /unknown option '--bogus'/],
    [['replay'], /missing required argument 'userReference'/],
    [['migrate', 'extra'], /too many arguments/],
    [['doctor', '--timeout', 'soon'], /--timeout <seconds>' argument 'soon' is invalid/],
    [['hash-token', '--role', 'root'], /Allowed choices are admin, authenticator/],
    [['hash-token', '--generate', '--role', 'admin'], /--generate needs --name and --role/],
    [['callback-ips', 'MARS'], /unknown region "MARS": use one of US, EU, SGP/],
    [[], /Usage: vault/],
  ])(
    '%p is a usage error: exit 2 with the reason on stderr',
    async (args, message) => {
      const run = await runVault(args);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stdout).toBe('');
    },
    30_000,
  );

  it('runs as the package bin (npx vault) and through npm run vault, without compiling', async () => {
    const npx = await runCommand('npx', ['--no-install', 'vault', 'hash-token', 'abc-123']);
    expect(npx.code).toBe(0);
    expect(npx.stdout).toBe(`${sha('abc-123')}\n`);
    const npm = await runCommand(
      'npm',
      ['run', '--silent', 'vault', '--', 'hash-token', '--json'],
      {},
      'abc-123\n',
    );
    expect(npm.code).toBe(0);
    expect(JSON.parse(npm.stdout)).toEqual({ sha256: sha('abc-123') });
    // dist/ is current (the global setup built it), so the pre-hook did not rebuild.
    expect(npm.stderr).not.toMatch(/building/);
  });
});

describe('vault hash-token', () => {
  it('prints the hash of a token read from stdin', async () => {
    const out = await runVault(['hash-token'], {}, 'tok-en_1234\n');
    expect(out).toMatchObject({ code: 0, stdout: `${sha('tok-en_1234')}\n` });
  });

  it('prints the hash of a token given as an argument, with a warning on stderr', async () => {
    const out = await runVault(['hash-token', 'tok-en_1234']);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`${sha('tok-en_1234')}\n`);
    expect(out.stderr).toContain('shell history');
  });

  it('with --name and --role, prints the whole VAULT_API_KEYS entry', async () => {
    const out = await runVault(['hash-token', '--name', 'svc', '--role', 'auditor'], {}, 'tok\n');
    expect(out).toMatchObject({ code: 0, stdout: `svc:auditor:${sha('tok')}\n` });
  });

  it('refuses a token the vault could never accept (exit 1), without echoing it', async () => {
    const out = await runVault(['hash-token'], {}, 'has space inside\n');
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/hash-token failed: the token must be/);
    expect(out.stderr).not.toContain('has space inside');
  });

  it('--generate prints a paste-ready name:role:sha256 entry and, apart, the token', async () => {
    const out = await runVault([
      'hash-token',
      '--generate',
      '--name',
      'onb',
      '--role',
      'onboarding',
    ]);
    expect(out.code).toBe(0);
    const match =
      /^# VAULT_API_KEYS entry.*\n(onb:onboarding:([0-9a-f]{64}))\n\n# token for the calling service.*\n([A-Za-z0-9_-]{43})\n$/.exec(
        out.stdout,
      );
    expect(match).not.toBeNull();
    const [, entry, hash, token] = match!;
    expect(hash).toBe(sha(token!));
    // The entry is accepted by the server's own parser, as is.
    expect(parseApiKeys(entry!)).toEqual([
      { name: 'onb', role: 'onboarding', sha256: Buffer.from(hash!, 'hex') },
    ]);

    const json = await runVault([
      'hash-token',
      '--generate',
      '--name',
      'a',
      '--role',
      'admin',
      '--json',
    ]);
    const parsed = JSON.parse(json.stdout) as Record<string, string>;
    expect(parsed).toMatchObject({ name: 'a', role: 'admin', entry: `a:admin:${parsed.sha256}` });
    expect(parsed.sha256).toBe(sha(parsed.token!));
  });
});

describe('vault migrate', () => {
  it('needs only the ledger settings: a new ledger is current at once, then stays so', async () => {
    // Settings the server would refuse (a bad port, S3 without a bucket) do not matter here.
    const env = { VAULT_DATA_DIR: dir, PORT: 'abc', BLOB_STORE: 's3' };
    const first = await runVault(['migrate'], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    // A new data directory starts from the build's migrated template (dist/ledger-template).
    expect(first.stdout).toBe(`the pglite ledger is up to date (version ${LATEST})\n`);
    const second = await runVault(['migrate', '--json'], env);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toEqual({ ledger: 'pglite', applied: [], version: LATEST });
  });

  it('refuses a bad ledger setting with exit 1, naming it', async () => {
    const run = await runVault(['migrate'], { DATABASE_URL: 'mysql://db/vault' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/migrate failed: invalid configuration:\n {2}- DATABASE_URL: /);
  });

  const pgUrl = process.env.TEST_DATABASE_URL;
  (pgUrl ? it : it.skip)(
    'on PostgreSQL, without VAULT_API_KEYS (the server requires them with DATABASE_URL)',
    async () => {
      const run = await runVault(['migrate', '--json'], { DATABASE_URL: pgUrl! });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ ledger: 'postgres', version: LATEST });
    },
    60_000,
  );
});

describe('vault replay', () => {
  it('puts a FAILED enrollment back to PENDING with a fresh budget, audited', async () => {
    const ref = '7b1f0c2e-0000-4000-8000-00000000cafe';
    const user = 'cli-user-1';
    await withLedger(dir, (ledger) =>
      ledger.transaction(async (tx) => {
        const now = new Date();
        await tx.enrollments.insert(newEnrollment(ref, now, { userReference: user }), now);
        await tx.enrollments.update(
          ref,
          { state: 'FAILED', lastError: 'x', attempts: 8, nextAttemptAt: null },
          now,
          null,
        );
      }),
    );

    const run = await runVault(['replay', user], { VAULT_DATA_DIR: dir });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`enrollment ${ref} is PENDING again`);
    expect(run.stdout).toContain('"state": "PENDING"');

    const { row, audit } = await withLedger(dir, (ledger) =>
      ledger.transaction(async (tx) => ({
        row: await tx.enrollments.get(ref),
        audit: await tx.audit.list({ enrollmentReference: ref }),
      })),
    );
    expect(row).toMatchObject({ state: 'PENDING', attempts: 0, lastError: null });
    expect(row?.nextAttemptAt).not.toBeNull();
    const replayed = audit.filter((e) => e.type === 'enrollment.replayed');
    expect(replayed).toHaveLength(1);
    expect(replayed[0]).toMatchObject({
      actor: `cli:${userInfo().username}`,
      userReference: user,
      details: { previousError: 'x', resumesAt: 'confirm' },
    });
  });

  it('exits 1 with a message when the user has no FAILED enrollment', async () => {
    const run = await runVault(['replay', 'nobody-here', '--json'], { VAULT_DATA_DIR: dir });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/replay failed: no FAILED enrollment to replay/);
  });

  it('exits 1 for a user reference shaped like PII, without echoing it or opening the ledger', async () => {
    const run = await runVault(['replay', 'someone@example.com'], { VAULT_DATA_DIR: dir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/replay failed: userReference must be/);
    expect(run.stderr).not.toContain('someone@example.com');
    await expect(stat(path.join(dir, 'ledger'))).rejects.toThrow();
  });
});

describe('vault doctor', () => {
  let simulator: RunningSimulator;
  beforeAll(async () => {
    simulator = await startSimulator({ port: 0 });
  });
  afterAll(async () => {
    await simulator.close();
  });

  interface Report {
    ok: boolean;
    checks: Array<{ name: string; status: string; detail: string; fix?: string }>;
  }
  const statuses = (report: Report) =>
    Object.fromEntries(report.checks.map((c) => [c.name, c.status]));
  const check = (report: Report, name: string) => report.checks.find((c) => c.name === name)!;

  async function writeKey(file: string): Promise<void> {
    await writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  }

  function remoteJumio(secret = simulator.credentials.apiSecret): Record<string, string> {
    return {
      JUMIO_BASE_URL: simulator.baseUrl,
      JUMIO_API_TOKEN: simulator.credentials.apiToken,
      JUMIO_API_SECRET: secret,
    };
  }

  it('all dependencies healthy: one ok line per check, exit 0, nothing changed at Jumio', async () => {
    const env = { VAULT_DATA_DIR: dir, ...remoteJumio() };
    expect((await runVault(['migrate'], { VAULT_DATA_DIR: dir })).code).toBe(0);
    await writeKey(path.join(dir, 'master.key'));
    await fetch(`${simulator.baseUrl}/__sim/requests`, { method: 'DELETE' });

    const text = await runVault(['doctor'], env);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      'ok config',
      'ok ledger',
      'ok blobs',
      'ok envelope',
      'ok jumio',
      'ok callback-allowlist',
      'doctor: all',
    ]);
    expect(text.stdout).toContain(`migrations current (version ${LATEST})`);

    const json = await runVault(['doctor', '--json'], env);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as Report;
    expect(report.ok).toBe(true);
    expect(new Set(report.checks.map((c) => c.status))).toEqual(new Set(['ok']));

    // Jumio saw authenticated reads of random scans, nothing else.
    const { requests } = (await (await fetch(`${simulator.baseUrl}/__sim/requests`)).json()) as {
      requests: Array<{ method: string; endpoint: string; credentials: string; status: number }>;
    };
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) {
      expect(r).toMatchObject({
        method: 'GET',
        endpoint: 'scanStatus',
        credentials: 'main',
        status: 404,
      });
    }
    // The probe object is gone and no key was generated.
    await expect(stat(path.join(dir, 'admin.token'))).rejects.toThrow();
  }, 120_000);

  it('names each broken dependency, says what to fix, and exits 1', async () => {
    // A ledger one migration behind, a stopped s3rver, a key file readable by others and
    // a wrong Jumio secret: every one reported in the same run.
    const db = await openDatabase(loadLedgerConfig({ VAULT_DATA_DIR: dir }));
    try {
      await runMigrations(db, migrations.slice(0, 1));
    } finally {
      await db.close();
    }
    const s3 = await startS3rver();
    const endpoint = s3.endpoint;
    await s3.close();
    const keyFile = path.join(dir, 'master.key');
    await writeKey(keyFile);
    await chmod(keyFile, 0o644);

    const run = await runVault(['doctor', '--json'], {
      VAULT_DATA_DIR: dir,
      VAULT_LOCAL_KEY_FILE: keyFile,
      BLOB_STORE: 's3',
      S3_BUCKET: 'vault-test',
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      ...remoteJumio('not-the-secret'),
    });
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.ok).toBe(false);
    expect(statuses(report)).toEqual({
      config: 'ok',
      ledger: 'fail',
      blobs: 'fail',
      envelope: 'fail',
      jumio: 'fail',
      'callback-allowlist': 'ok',
    });
    expect(check(report, 'ledger')).toMatchObject({
      detail: `migration(s) ${migrations
        .slice(1)
        .map((m) => m.version)
        .join(', ')} not applied`,
      fix: expect.stringMatching(/vault migrate/),
    });
    expect(check(report, 'blobs').detail).toContain(`s3 bucket vault-test at ${endpoint}`);
    expect(check(report, 'blobs').detail).toMatch(/ECONNREFUSED/);
    expect(check(report, 'blobs').fix).toMatch(/S3_ENDPOINT/);
    expect(check(report, 'envelope').detail).toMatch(/VAULT_LOCAL_KEY_FILE \(.*master\.key\)/);
    expect(check(report, 'jumio')).toMatchObject({
      detail: `${simulator.baseUrl} refused JUMIO_API_TOKEN/JUMIO_API_SECRET (HTTP 401)`,
      fix: expect.stringMatching(/check JUMIO_API_TOKEN\/JUMIO_API_SECRET/),
    });
    // The secret is never printed.
    expect(run.stdout + run.stderr).not.toContain('not-the-secret');
  }, 120_000);

  it('an invalid configuration: FAIL config naming the variables, the rest skipped, exit 1', async () => {
    const run = await runVault(['doctor'], { VAULT_DATA_DIR: dir, PORT: 'abc', BLOB_STORE: 's3' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^FAIL {2}config +PORT: must be an integer/m);
    expect(run.stdout).toMatch(/^skip {2}ledger +not checked/m);
    expect(run.stdout).toMatch(/doctor: 1 check\(s\) failed/);
  });
});

describe('vault demo (npm run demo)', () => {
  it('drives an onboarding to ACTIVE, a rejection, a re-enrollment and authentications, and exits 0', async () => {
    const run = await runCommand('npm', ['run', '--silent', 'demo']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    expect(out).toMatch(/demo-user-1 says ACTIVE/);
    expect(out).toMatch(/PENDING \(callback committed\) -> STORED .* -> ACTIVE/);
    expect(out).toMatch(/ok {2}deleted at Jumio: the simulator says deleted=true/);
    expect(out).toMatch(/retrieval \(GET 200\) -> facemap download \(GET 200\) -> delete/);
    expect(out).toMatch(/does not contain the plaintext facemap/);
    expect(out).toMatch(/REJECTED with reason verification_not_approved/);
    expect(out).toMatch(/is SUPERSEDED, its blob destroyed/);
    expect(out).toMatch(/enrollment\.superseded/);
    // Authentication: PASSED, FAILED, one expired by a second initiate, signed notifications.
    expect(out).toMatch(/POST \/v1\/authentications -> 201/);
    expect(out).toMatch(/Jumio received exactly the enrolled facemap/);
    expect(out).toMatch(/says PASSED \(source callback\); deleted at Jumio/);
    expect(out).toMatch(/says FAILED \(source callback\); deleted at Jumio/);
    expect(out).toMatch(/is EXPIRED at once \(reason superseded\)/);
    expect(out).toMatch(/EXPIRED callback for the first arrived \(200\); it stays EXPIRED/);
    expect(out).toMatch(/signature verified \(standardwebhooks\), says PASSED/);
    expect(out).toMatch(/lastInteractionAt is now/);
    expect(out).toMatch(/facemap\.decrypted/);
    expect(out).toMatch(/demo complete: every expectation held/);
    // No JSON log lines, and the admin token is named by its file only.
    expect(out).not.toMatch(/^\{"level"/m);
    const dataDir = /data directory: (\S+)/.exec(out)?.[1];
    expect(dataDir).toBeDefined();
    await expect(stat(dataDir!)).rejects.toThrow(); // removed without --keep
    // A whole vault boots in a child process: ~20 s on a quiet machine, more on a busy one.
  }, 120_000);
});
