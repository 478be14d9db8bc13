import { validate } from '@readme/openapi-parser';
import request from 'supertest';
import { createApp } from '../../src/app';
import type { RouteRegistry } from '../../src/http/route';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  vaultLedgerKinds,
} from '../helpers/vault';

describe('GET /openapi.json', () => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await vaultLedgerKinds[0]![1]();
    vault = await startTestVault(sim, ledger);
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const res = await request(vault.url).get('/openapi.json').expect(200);
    expect(res.body.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(res.body));
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('describes every route the vault serves, the webhook and the probes, with security and errors', async () => {
    const { body } = await request(vault.url).get('/openapi.json').expect(200);
    const routes = createApp(vault.container).locals.routes as RouteRegistry;
    expect(routes.mounted.length).toBeGreaterThan(0);
    for (const spec of routes.routes) {
      const operation = body.paths[spec.path]?.[spec.method];
      expect({ route: `${spec.method} ${spec.path}`, documented: !!operation }).toEqual({
        route: `${spec.method} ${spec.path}`,
        documented: true,
      });
      if (spec.roles) {
        expect(operation.security).toEqual([{ bearerAuth: [] }]);
        expect(operation.responses['401']).toBeDefined();
        expect(operation.responses['403']).toBeDefined();
      }
      expect(operation.responses['500'].content['application/json'].schema).toEqual({
        $ref: '#/components/schemas/Error',
      });
    }
    for (const path of ['/webhooks/jumio', '/healthz', '/readyz']) {
      expect(Object.keys(body.paths)).toContain(path);
    }
    expect(body.paths['/webhooks/jumio'].post.requestBody.content).toHaveProperty(
      'application/x-www-form-urlencoded',
    );
    expect(body.components.securitySchemes.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
  });
});
