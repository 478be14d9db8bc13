import request from 'supertest';
import { ROLES, type Role } from '../../src/http/api-keys';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  TOKENS,
  vaultLedgerKinds,
} from '../helpers/vault';

/**
 * Invariant 11, least privilege, asserted from one table: every /v1 route the vault
 * declares (its RouteRegistry, as /openapi.json publishes it) with every role and with no
 * token. A route added without a line here fails the first test.
 */
const MATRIX: Record<string, readonly Role[]> = {
  'POST /v1/enrollment-intents': ['onboarding', 'admin'],
  'GET /v1/enrollments': ['auditor', 'admin'],
  'GET /v1/enrollments/{userReference}': ['admin', 'auditor', 'authenticator'],
  'DELETE /v1/enrollments/{userReference}': ['admin'],
  'POST /v1/enrollments/{userReference}/replay': ['admin'],
  'GET /v1/enrollments/by-scan/{scanReference}': ['admin', 'auditor'],
  'POST /v1/enrollments/by-scan/{scanReference}/resolve': ['admin'],
  'PUT /v1/enrollments/{userReference}/legal-hold': ['admin'],
  'DELETE /v1/enrollments/{userReference}/legal-hold': ['admin'],
  'POST /v1/enrollments/{userReference}/purpose-satisfied': ['admin'],
  'GET /v1/me': ['admin', 'auditor', 'authenticator', 'onboarding'],
  'GET /v1/inventory/summary': ['auditor', 'admin'],
  'GET /v1/inventory/history': ['auditor', 'admin'],
  'GET /v1/inventory/retention-schedule': ['auditor', 'admin'],
  'GET /v1/legal-holds': ['auditor', 'admin'],
  'GET /v1/erasures': ['auditor', 'admin'],
  'GET /v1/audit/status': ['auditor', 'admin'],
  'GET /v1/inventory/export': ['auditor', 'admin'],
  'GET /v1/audit-events': ['auditor', 'admin'],
  'POST /v1/audit/digests': ['admin'],
  'GET /v1/audit/verify': ['auditor', 'admin'],
  'GET /v1/erasures/{erasureId}': ['auditor', 'admin'],
  'POST /v1/authentications': ['authenticator', 'admin'],
  'GET /v1/authentications': ['admin', 'auditor', 'authenticator'],
  'GET /v1/authentications/{authenticationReference}': ['admin', 'auditor', 'authenticator'],
  'GET /v1/notifications': ['admin'],
  'POST /v1/notifications/{id}/redeliver': ['admin'],
  'GET /v1/keys': ['admin', 'auditor'],
};

/** Path parameters that pass validation, so an allowed role reaches the handler. */
const PARAMS: Record<string, string> = {
  userReference: 'matrix-user-1',
  scanReference: 'b3b6a9f2-0000-4000-8000-000000000000',
  erasureId: 'b3b6a9f2-0000-4000-8000-000000000001',
  authenticationReference: 'b3b6a9f2-0000-4000-8000-000000000002',
  id: 'b3b6a9f2-0000-4000-8000-000000000003',
};

describe('role matrix', () => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;
  let declared: string[];

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await vaultLedgerKinds[0]![1]();
    vault = await startTestVault(sim, ledger);
    const doc = (await request(vault.url).get('/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    declared = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith('/v1/'))
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  it('has one line for every declared /v1 route, and no line for a route that does not exist', () => {
    expect([...declared].sort()).toEqual(Object.keys(MATRIX).sort());
  });

  const cases = Object.entries(MATRIX).flatMap(([route, allowed]) =>
    [...ROLES, null].map((role) => [route, role, role !== null && allowed.includes(role)] as const),
  );

  it.each(cases)('%s as %s: allowed=%s', async (route, role, allowed) => {
    const [method, template] = route.split(' ') as [string, string];
    const path = template.replace(/\{(\w+)\}/g, (_m, name: string) => PARAMS[name]!);
    let req = request(vault.url)[method.toLowerCase() as 'get' | 'post' | 'put' | 'delete'](path);
    if (role) req = req.set('Authorization', `Bearer ${TOKENS[role]}`);
    // An empty (invalid) body: an allowed caller gets past the role check to validation.
    const res = await req.send({});
    if (role === null) expect(res.status).toBe(401);
    else if (!allowed) expect(res.status).toBe(403);
    else expect([401, 403]).not.toContain(res.status);
  });
});
