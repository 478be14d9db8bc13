import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { startMetricsServer } from '../../src/adapters/metrics';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  vaultLedgerKinds,
} from '../helpers/vault';

/** `name{a="x",b="y"} 12` -> { name, labels, value } */
function parse(text: string) {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`unparsable metrics line: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[k!] = v!;
      }
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

describe('metrics', () => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;
  let metrics: Awaited<ReturnType<typeof startMetricsServer>>;

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await vaultLedgerKinds[0]![1]();
    vault = await startTestVault(sim, ledger);
    metrics = await startMetricsServer(vault.container.metrics, 0, '127.0.0.1');
  });
  afterAll(async () => {
    await metrics?.close();
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  it('serves the documented series on its own port after one onboarding, with no reference in any label', async () => {
    const userReference = `user-metrics-${randomBytes(4).toString('hex')}`;
    const { scanReference } = await sim.createScan({ customerId: userReference });
    await sim.sendCallback(scanReference, `${vault.url}/webhooks/jumio`);
    for (let i = 0; i < 50; i++) {
      await vault.container.pipeline.runOnce();
      const e = await vault.container.ledger.transaction((tx) => tx.enrollments.get(scanReference));
      if (e?.state === 'ACTIVE') break;
    }
    await request(vault.url).get(`/v1/enrollments/${userReference}`).expect(401);

    const res = await request(`http://127.0.0.1:${metrics.port}`).get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const samples = parse(res.text);
    const find = (name: string, labels: Record<string, string> = {}) =>
      samples.find(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      );

    expect(
      find('vault_callbacks_total', { type: 'NETVERIFYID', outcome: 'committed' })?.value,
    ).toBe(1);
    expect(
      find('vault_http_request_duration_seconds_count', {
        route: '/webhooks/jumio',
        method: 'POST',
        status: '200',
      })?.value,
    ).toBe(1);
    // The route template, never the concrete path with the user reference.
    expect(find('vault_http_request_duration_seconds_count', { status: '401' })?.labels.route).toBe(
      'unmatched',
    );
    for (const step of ['confirm', 'store', 'delete_at_jumio', 'activate']) {
      expect(
        find('vault_work_step_duration_seconds_count', {
          queue: 'enrollments',
          step,
          outcome: 'done',
        })?.value,
      ).toBeGreaterThanOrEqual(1);
    }
    for (const endpoint of ['scan_details', 'facemap', 'scan_delete']) {
      expect(find('vault_jumio_requests_total', { endpoint, status: '200' })?.value).toBe(1);
      expect(find('vault_jumio_request_duration_seconds_count', { endpoint })).toBeDefined();
    }
    expect(find('vault_blob_operation_duration_seconds_count', { operation: 'put' })).toBeDefined();
    expect(
      find('vault_envelope_operation_duration_seconds_count', { operation: 'encrypt' }),
    ).toBeDefined();
    expect(
      find('vault_ledger_transaction_duration_seconds_count', { outcome: 'ok' }),
    ).toBeDefined();
    expect(find('vault_audit_events_total', { type: 'facemap.stored' })?.value).toBe(1);
    expect(find('vault_enrollments', { state: 'ACTIVE' })?.value).toBe(1);
    expect(find('vault_enrollments', { state: 'FAILED' })?.value).toBe(0);
    for (const queue of ['enrollments', 'schedules']) {
      expect(find('vault_queue_oldest_due_age_seconds', { queue })).toBeDefined();
      expect(find('vault_queue_due', { queue })).toBeDefined();
      expect(find('vault_queue_leased', { queue })).toBeDefined();
    }
    expect(find('vault_process_resident_memory_bytes')).toBeDefined();

    // No label value carries a reference (bounded labels only).
    const values = samples.flatMap((s) => Object.values(s.labels));
    for (const v of values) {
      expect(v).not.toContain(userReference);
      expect(v).not.toContain(scanReference);
    }
  });

  it('is not served where Jumio and the internal services connect', async () => {
    await request(vault.url).get('/metrics').expect(404);
  });
});
