import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express, { type Express } from 'express';
import request from 'supertest';
import type { Logger } from '../../src/core/ports';
import {
  AdminTokenError,
  ApiKeySpecError,
  apiKeyAuth,
  authenticate,
  ensureAdminToken,
  hashToken,
  parseApiKeys,
  requireRole,
  type ApiKey,
  type DeniedRequest,
  type DenialOptions,
} from '../../src/http/api-keys';
import { ROOT } from '../helpers/process';

interface LogCall {
  level: string;
  obj: object;
  msg?: string;
}

function recordingLogger(calls: LogCall[] = []): Logger & { calls: LogCall[] } {
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      calls.push({ level, obj, msg });
    };
  return {
    calls,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => recordingLogger(calls),
  };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const posix = process.platform !== 'win32';
const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('parseApiKeys', () => {
  const h1 = sha('token-one');
  const h2 = sha('token-two');

  it('parses entries, tolerating whitespace and upper-case hex', () => {
    const keys = parseApiKeys(
      ` payments:authenticator:${h1} ,\n audit.team_1:auditor:${h2.toUpperCase()} `,
    );
    expect(keys).toEqual([
      { name: 'payments', role: 'authenticator', sha256: Buffer.from(h1, 'hex') },
      { name: 'audit.team_1', role: 'auditor', sha256: Buffer.from(h2, 'hex') },
    ]);
    expect(keys[1]?.sha256.length).toBe(32);
  });

  it('accepts every role and gives [] for an empty or blank spec', () => {
    const spec = ['admin', 'authenticator', 'auditor', 'onboarding']
      .map((role, i) => `k${i}:${role}:${sha(`t${i}`)}`)
      .join(',');
    expect(parseApiKeys(spec).map((k) => k.role)).toEqual([
      'admin',
      'authenticator',
      'auditor',
      'onboarding',
    ]);
    expect(parseApiKeys('')).toEqual([]);
    expect(parseApiKeys('   ')).toEqual([]);
  });

  const cases: [string, string, RegExp][] = [
    [
      'unknown role',
      `a:admin:${h1},pay:superuser:${h2}`,
      /entry 2 \("pay"\): the role must be one of/,
    ],
    [
      'short hash',
      `pay:admin:${h1.slice(1)}`,
      /entry 1 \("pay"\): the third field must be the SHA-256/,
    ],
    ['non-hex hash', `pay:admin:${h1.slice(1)}z`, /entry 1 \("pay"\): the third field/],
    ['bad name', `a:admin:${h1},bad name!:admin:${h2}`, /entry 2: the name must be 1 to 64/],
    ['too long name', `${'n'.repeat(65)}:admin:${h1}`, /entry 1: the name must be/],
    [
      'two fields',
      `a:admin:${h1},pay:${h2}`,
      /entry 2 must have the form name:role:sha256hex .*found 2/,
    ],
    ['four fields', `pay:admin:x:${h1}`, /entry 1 must have the form .*found 4/],
    ['empty entry', `a:admin:${h1},,b:auditor:${h2}`, /entry 2 is empty/],
    ['trailing comma', `a:admin:${h1},`, /entry 2 is empty/],
    [
      'duplicate name',
      `a:admin:${h1},a:auditor:${h2}`,
      /entry 2 \("a"\): the name is already used by entry 1/,
    ],
    [
      'duplicate hash',
      `a:admin:${h1},b:auditor:${h1.toUpperCase()}`,
      /entry 2 \("b"\): has the same token hash as entry 1 \("a"\)/,
    ],
    [
      'hash of empty token',
      `a:admin:${sha('')}`,
      /entry 1 \("a"\): the hash is that of an empty token/,
    ],
  ];

  it.each(cases)(
    'refuses %s, naming the entry and never echoing a hash',
    (_label, spec, message) => {
      let error: unknown;
      try {
        parseApiKeys(spec);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ApiKeySpecError);
      const text = (error as Error).message;
      expect(text).toMatch(/^VAULT_API_KEYS: /);
      expect(text).toMatch(message);
      for (const hash of [h1, h2, sha('')]) {
        expect(text.toLowerCase()).not.toContain(hash.slice(0, 16));
        expect(text.toLowerCase()).not.toContain(hash.slice(-16));
      }
    },
  );

  it('does not quote a lone field or a hex-looking name: it may be a token or hash', () => {
    const token = randomBytes(32).toString('base64url');
    expect(() => parseApiKeys(token)).toThrow(/^VAULT_API_KEYS: entry 1 must have the form/);
    try {
      parseApiKeys(token);
    } catch (err) {
      expect((err as Error).message).not.toContain(token);
    }
    try {
      parseApiKeys(`${h1}:admin:${h2}`);
    } catch (err) {
      expect((err as Error).message).not.toContain(h1);
    }
    // A hash in the name slot is still a valid name; it just is not echoed if anything fails.
    expect(() => parseApiKeys(`${h1}:root:${h2}`)).toThrow(/^VAULT_API_KEYS: entry 1: the role/);
  });
});

describe('hashToken', () => {
  it('is the lowercase SHA-256 hex of the UTF-8 token', () => {
    expect(hashToken('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});

// ---------------------------------------------------------------- middlewares over HTTP

const TOKENS = {
  admin: 'admin-token-0123456789abcdefghijklmnop',
  auth: 'auth-token_0123456789~+/ABCDEFGHIJ==',
  auditor: 'auditor-token-0123456789abcdefghijklm',
};

function keysFor(): ApiKey[] {
  return parseApiKeys(
    [
      `ops:admin:${hashToken(TOKENS.admin)}`,
      `login:authenticator:${hashToken(TOKENS.auth)}`,
      `compliance:auditor:${hashToken(TOKENS.auditor)}`,
    ].join(','),
  );
}

function buildApp(options: DenialOptions, keys = keysFor()): Express {
  const app = express();
  const auth = apiKeyAuth(keys, options);
  app.use((_req, res, next) => {
    res.locals.requestId = 'req-1';
    next();
  });
  app.get('/v1/whoami', auth.authenticate, (_req, res) => {
    res.json({ caller: res.locals.caller });
  });
  app.get('/v1/inventory', auth.authenticate, auth.requireRole('admin', 'auditor'), (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/v1/auth', auth.authenticate, auth.requireRole('authenticator'), (_req, res) => {
    res.json({ ok: true });
  });
  // A wiring mistake: requireRole without authenticate.
  app.get('/v1/miswired', requireRole(['admin'], options), (_req, res) => {
    res.json({ ok: true });
  });
  return app;
}

describe('authenticate and requireRole', () => {
  let denied: DeniedRequest[];
  let logger: ReturnType<typeof recordingLogger>;
  let app: Express;

  beforeEach(() => {
    denied = [];
    logger = recordingLogger();
    app = buildApp({ onDenied: (e) => void denied.push(e), logger });
  });

  it('accepts a known token and sets res.locals.caller (scheme case-insensitive)', async () => {
    const res = await request(app)
      .get('/v1/whoami')
      .set('Authorization', `bEaReR ${TOKENS.auth}`)
      .expect(200);
    expect(res.body).toEqual({ caller: { name: 'login', role: 'authenticator' } });
    expect(denied).toEqual([]);
  });

  it('answers 401 with WWW-Authenticate when the token is missing, and reports it', async () => {
    const res = await request(app).get('/v1/whoami?user=x').expect(401);
    expect(res.body).toEqual({
      error: { code: 'unauthorized', message: 'a bearer token is required', requestId: 'req-1' },
    });
    expect(res.headers['www-authenticate']).toBe('Bearer realm="facemap-vault"');
    expect(denied).toEqual([
      {
        status: 401,
        reason: 'missing_token',
        method: 'GET',
        path: '/v1/whoami',
        sourceAddress: '127.0.0.1',
        socketAddress: expect.stringMatching(/127\.0\.0\.1$/),
        requestId: 'req-1',
      },
    ]);
  });

  const malformed: [string, string][] = [
    ['another scheme', `Basic ${Buffer.from('a:b').toString('base64')}`],
    ['no token', 'Bearer'],
    ['no space', `Bearer${TOKENS.admin}`],
    ['two tokens', `Bearer ${TOKENS.admin} ${TOKENS.auth}`],
    ['a forbidden character', `Bearer ${TOKENS.admin}*`],
    ['padding inside', `Bearer ab=cd`],
    ['an over-long token', `Bearer ${'a'.repeat(513)}`],
  ];

  it.each(malformed)('refuses a header with %s as malformed', async (_label, header) => {
    const res = await request(app).get('/v1/whoami').set('Authorization', header).expect(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(res.headers['www-authenticate']).toBe(
      'Bearer realm="facemap-vault", error="invalid_token"',
    );
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ status: 401, reason: 'malformed_authorization' });
    expect(denied[0]).not.toHaveProperty('caller');
  });

  it('refuses an unknown token, and one whose hash differs only in the last byte', async () => {
    await request(app)
      .get('/v1/whoami')
      .set('Authorization', 'Bearer not-a-known-token')
      .expect(401);
    // A key whose hash equals the admin token's hash except for the last byte: a compare
    // that stopped early, or compared a prefix, would let the admin token in as "near".
    const digest = createHash('sha256').update(TOKENS.admin).digest();
    const near = Buffer.from(digest);
    near[31] = (near[31] ?? 0) ^ 0x01;
    const nearApp = buildApp({ onDenied: (e) => void denied.push(e), logger }, [
      { name: 'near', role: 'admin', sha256: near },
    ]);
    await request(nearApp)
      .get('/v1/whoami')
      .set('Authorization', `Bearer ${TOKENS.admin}`)
      .expect(401);
    // ... while the exact hash is accepted.
    const exactApp = buildApp({ onDenied: (e) => void denied.push(e), logger }, [
      { name: 'exact', role: 'admin', sha256: digest },
    ]);
    await request(exactApp)
      .get('/v1/whoami')
      .set('Authorization', `Bearer ${TOKENS.admin}`)
      .expect(200);
    expect(denied.map((d) => d.reason)).toEqual(['unknown_token', 'unknown_token']);
  });

  it('compares against every key (the match is found wherever it sits in the list)', async () => {
    const keys = keysFor();
    const shuffled = [keys[2]!, keys[0]!, keys[1]!];
    const a = buildApp({ onDenied: (e) => void denied.push(e), logger }, shuffled);
    for (const [token, name] of [
      [TOKENS.auditor, 'compliance'],
      [TOKENS.admin, 'ops'],
      [TOKENS.auth, 'login'],
    ] as const) {
      const res = await request(a).get('/v1/whoami').set('Authorization', `Bearer ${token}`);
      expect(res.body.caller.name).toBe(name);
    }
  });

  it('applies the role matrix: 401 without a token, 403 for a role not listed', async () => {
    const matrix: [string | undefined, 'get' | 'post', string, number][] = [
      [undefined, 'get', '/v1/inventory', 401],
      [TOKENS.admin, 'get', '/v1/inventory', 200],
      [TOKENS.auditor, 'get', '/v1/inventory', 200],
      [TOKENS.auth, 'get', '/v1/inventory', 403],
      [undefined, 'post', '/v1/auth', 401],
      [TOKENS.auth, 'post', '/v1/auth', 200],
      // admin is not implied: the route lists only authenticator.
      [TOKENS.admin, 'post', '/v1/auth', 403],
      [TOKENS.auditor, 'post', '/v1/auth', 403],
    ];
    for (const [token, method, url, status] of matrix) {
      const req = request(app)[method](url);
      if (token) req.set('Authorization', `Bearer ${token}`);
      const res = await req;
      expect([method, url, token, res.status]).toEqual([method, url, token, status]);
      if (status === 403) {
        expect(res.body.error.code).toBe('forbidden');
        expect(res.headers['www-authenticate']).toBeUndefined();
      }
    }
  });

  it('reports a 403 with the caller name', async () => {
    await request(app)
      .post('/v1/auth?x=1')
      .set('Authorization', `Bearer ${TOKENS.auditor}`)
      .expect(403);
    expect(denied).toEqual([
      {
        status: 403,
        reason: 'role_not_allowed',
        caller: 'compliance',
        method: 'POST',
        path: '/v1/auth',
        sourceAddress: '127.0.0.1',
        socketAddress: expect.any(String),
        requestId: 'req-1',
      },
    ]);
  });

  it('fails closed when requireRole runs without authenticate', async () => {
    await request(app)
      .get('/v1/miswired')
      .set('Authorization', `Bearer ${TOKENS.admin}`)
      .expect(401);
    expect(denied[0]).toMatchObject({ status: 401, reason: 'not_authenticated' });
  });

  it('still denies when onDenied throws or rejects, and logs without the token', async () => {
    for (const onDenied of [
      () => {
        throw new Error('audit down');
      },
      () => Promise.reject(new Error('audit down')),
    ]) {
      const calls: LogCall[] = [];
      const failing = buildApp({ onDenied, logger: recordingLogger(calls) });
      const bad = `${TOKENS.admin}x`;
      await request(failing).get('/v1/whoami').set('Authorization', `Bearer ${bad}`).expect(401);
      await request(failing)
        .get('/v1/inventory')
        .set('Authorization', `Bearer ${TOKENS.auth}`)
        .expect(403);
      expect(calls.map((c) => [c.level, c.msg])).toEqual([
        ['error', 'recording a denied request failed'],
        ['error', 'recording a denied request failed'],
      ]);
      const text = JSON.stringify(calls);
      expect(text).toContain('audit down');
      expect(text).not.toContain(bad);
      expect(text).not.toContain(TOKENS.auth);
    }
  });

  it('waits for onDenied before answering', async () => {
    let recorded = false;
    const slow = buildApp({
      onDenied: async () => {
        await new Promise((r) => setTimeout(r, 50));
        recorded = true;
      },
      logger,
    });
    await request(slow).get('/v1/whoami').expect(401);
    expect(recorded).toBe(true);
  });

  it('refuses keys with a wrong hash length and requireRole without roles', () => {
    const options = { onDenied: () => undefined, logger };
    expect(() =>
      authenticate([{ name: 'x', role: 'admin', sha256: Buffer.alloc(16) }], options),
    ).toThrow(/32 bytes/);
    expect(() => requireRole([], options)).toThrow(/at least one role/);
  });
});

// ---------------------------------------------------------------- embedded admin token

describe('ensureAdminToken', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'admin-token-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('creates a 0600 file with a 32-byte base64url token and logs only where it is', async () => {
    const logger = recordingLogger();
    const dataDir = path.join(dir, 'data'); // created on demand
    const result = await ensureAdminToken(dataDir, logger);

    const tokenFile = path.join(dataDir, 'admin.token');
    expect(result.tokenFile).toBe(tokenFile);
    expect(result.created).toBe(true);
    const text = await fs.readFile(tokenFile, 'ascii');
    expect(text).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    const token = text.trim();
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    if (posix) expect((await fs.stat(tokenFile)).mode & 0o777).toBe(0o600);
    expect(result.key).toEqual({
      name: 'local-admin',
      role: 'admin',
      sha256: Buffer.from(hashToken(token), 'hex'),
    });
    expect(logger.calls).toHaveLength(1);
    expect(logger.calls[0]?.level).toBe('warn');
    expect(logger.calls[0]?.obj).toEqual({ tokenFile, apiKey: 'local-admin' });
    expect(logger.calls[0]?.msg).toContain(tokenFile);
    const logged = JSON.stringify(logger.calls);
    expect(logged).not.toContain(token);
    expect(logged).not.toContain(hashToken(token));
    // No temporary file left behind.
    expect(await fs.readdir(dataDir)).toEqual(['admin.token']);
  });

  it('reuses the existing token on the second call', async () => {
    const first = await ensureAdminToken(dir, recordingLogger());
    const logger = recordingLogger();
    const second = await ensureAdminToken(dir, logger);
    expect(second.created).toBe(false);
    expect(second.key.sha256.equals(first.key.sha256)).toBe(true);
    expect(logger.calls[0]?.level).toBe('info');
  });

  it('gives one token to concurrent callers', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => ensureAdminToken(dir, recordingLogger())),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const hashes = new Set(results.map((r) => r.key.sha256.toString('hex')));
    expect(hashes.size).toBe(1);
  });

  (posix ? it : it.skip)('refuses a group- or world-readable file, naming the path', async () => {
    const file = path.join(dir, 'admin.token');
    const token = randomBytes(32).toString('base64url');
    await fs.writeFile(file, `${token}\n`);
    await fs.chmod(file, 0o644);
    const promise = ensureAdminToken(dir, recordingLogger());
    await expect(promise).rejects.toThrow(AdminTokenError);
    await expect(ensureAdminToken(dir, recordingLogger())).rejects.toThrow(
      `admin token file ${file}: is accessible by group or others (mode 0644); run: chmod 600 ${file}`,
    );
    // Unchanged: the vault does not "fix" (or replace) an operator's file.
    expect(await fs.readFile(file, 'ascii')).toBe(`${token}\n`);
  });

  it('refuses a file that does not hold a usable token, without echoing it', async () => {
    const file = path.join(dir, 'admin.token');
    await fs.writeFile(file, 'short secret value', { mode: 0o600 });
    await fs.chmod(file, 0o600);
    let message = '';
    await ensureAdminToken(dir, recordingLogger()).catch((e: Error) => (message = e.message));
    expect(message).toContain(file);
    expect(message).toContain('must hold one bearer token');
    expect(message).not.toContain('short secret value');
  });

  (posix && !runningAsRoot ? it : it.skip)('reports an unreadable file by path', async () => {
    const file = path.join(dir, 'admin.token');
    await fs.writeFile(file, randomBytes(32).toString('base64url'));
    await fs.chmod(file, 0o000);
    await expect(ensureAdminToken(dir, recordingLogger())).rejects.toThrow(
      `admin token file ${file}: cannot be opened (EACCES)`,
    );
  });
});

// ---------------------------------------------------------------- the operator CLI

function runCli(
  args: string[],
  stdin?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', path.join(ROOT, 'src/cli/hash-token.ts'), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } },
      (error, stdout, stderr) => {
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin!.end(stdin ?? '');
  });
}

describe('hash-token CLI', () => {
  it('prints the hash of a token read from stdin', async () => {
    const out = await runCli([], 'tok-en_1234\n');
    expect(out).toMatchObject({ code: 0, stdout: `${sha('tok-en_1234')}\n` });
  });

  it('prints the hash of a token given as an argument, with a warning on stderr', async () => {
    const out = await runCli(['tok-en_1234']);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`${sha('tok-en_1234')}\n`);
    expect(out.stderr).toContain('shell history');
  });

  it('refuses a token the vault could never accept, without echoing it', async () => {
    const out = await runCli([], 'has space inside\n');
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).not.toContain('has space inside');
  });

  it('generates a token and prints it with its hash', async () => {
    const out = await runCli(['--generate']);
    const match = /^token: {2}([A-Za-z0-9_-]{43})\nsha256: ([0-9a-f]{64})\n$/.exec(out.stdout);
    expect(match).not.toBeNull();
    expect(match![2]).toBe(sha(match![1]!));
  });
});
