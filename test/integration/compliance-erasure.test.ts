import { randomBytes } from 'node:crypto';
import type { BlobStore } from '../../src/core/ports';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  vaultLedgerKinds,
} from '../helpers/vault';
import { api, DAY_MS, enrollmentOf, onboardActive, TestClock } from '../helpers/compliance';

/** A blob store whose deletes fail while `failing` is set: a store that breaks midway. */
function faultyDeletes(store: BlobStore, control: { failing: number }): BlobStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'delete') {
        return async (key: string) => {
          if (control.failing > 0) {
            control.failing -= 1;
            throw Object.assign(new Error('store unavailable'), { name: 'StoreDown' });
          }
          return target.delete(key);
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * Erasure with proof and retention with legal hold (issue 9 #3, #4) through real HTTP, the
 * simulator and the filesystem store, on each ledger, with a controlled clock.
 */
describe.each(vaultLedgerKinds)('erasure and retention on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;
  const clock = new TestClock();
  const faults = { failing: 0 };

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await chooseLedger();
    vault = await startTestVault(sim, ledger, {
      overrides: { clock, wrapBlobs: (store) => faultyDeletes(store, faults) },
    });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });
  afterEach(() => {
    faults.failing = 0;
  });

  const user = (label: string) => `user-${label}-${randomBytes(4).toString('hex')}`;
  const keysUnder = async (ref: string) =>
    (await vault.container.blobs.list(`facemaps/${ref}/`)).keys;

  /** An ACTIVE facemap plus an older attempt's blob, and a REJECTED scan Jumio still holds. */
  async function userWithHistory(label: string) {
    const u = user(label);
    const active = await onboardActive(vault, u);
    const stray = `facemaps/${active.scanReference}/earlier-attempt.bin`;
    await vault.container.blobs.put(stray, new Uint8Array([1, 2, 3]));
    const rejected = await vault.sim.createScan({ customerId: u, similarity: 'NO_MATCH' });
    await vault.sim.sendCallback(rejected.scanReference, `${vault.url}/webhooks/jumio`);
    return { u, active, stray, rejectedRef: rejected.scanReference };
  }

  it('destroys every stored version, leaves tombstones and a receipt, and answers the same receipt twice', async () => {
    const { u, active, stray, rejectedRef } = await userWithHistory('erase');
    expect(await keysUnder(active.scanReference)).toHaveLength(2);
    const res = await api(vault)
      .delete(`/v1/enrollments/${u}`, { reason: 'gdpr_art17', ticket: 'DSR-1042' })
      .expect(200);
    const receipt = res.body;
    expect(receipt).toMatchObject({
      state: 'DONE',
      userReference: u,
      reason: 'gdpr_art17',
      ticket: 'DSR-1042',
      requestedBy: 'admin-svc',
    });
    expect([...receipt.enrollmentReferences].sort()).toEqual(
      [active.scanReference, rejectedRef].sort(),
    );
    expect(receipt.blobKeysDestroyed).toEqual([active.record.blobKey, stray].sort());
    expect(receipt.auditSequence).toBeGreaterThan(0);
    expect(Date.parse(receipt.erasedAt)).not.toBeNaN();
    expect(await keysUnder(active.scanReference)).toEqual([]);

    // Tombstones: references, states, times and the reason; no callback data.
    const tomb = (await enrollmentOf(vault, active.scanReference))!;
    expect(tomb).toMatchObject({
      state: 'ERASED',
      stateBeforeErasure: 'ACTIVE',
      reason: 'gdpr_art17',
      erasureId: receipt.erasureId,
      userReference: u,
      sourceAddress: null,
      callbackFacemapUrl: null,
      facemapUrl: null,
    });
    expect(tomb.erasedAt).toBeInstanceOf(Date);
    expect((await enrollmentOf(vault, rejectedRef))!.stateBeforeErasure).toBe('REJECTED');
    // Jumio was asked to delete the onboarding copy it still held (the rejected scan).
    expect((await sim.scan(rejectedRef)).deleted).toBe(true);

    // The audit entry the receipt cites says the same.
    const audit = await api(vault, 'auditor').get(`/v1/audit-events?userReference=${u}&limit=100`);
    const cited = audit.body.items.find((e: { seq: number }) => e.seq === receipt.auditSequence);
    expect(cited).toMatchObject({
      type: 'erasure.completed',
      details: { erasureId: receipt.erasureId, blobKeysDestroyed: receipt.blobKeysDestroyed },
    });
    expect(audit.body.items.map((e: { type: string }) => e.type)).toEqual(
      expect.arrayContaining(['erasure.requested', 'enrollment.erased', 'erasure.completed']),
    );

    const again = await api(vault).delete(`/v1/enrollments/${u}`, { reason: 'other' }).expect(200);
    expect(again.body).toEqual(receipt);
    const read = await api(vault, 'auditor').get(`/v1/erasures/${receipt.erasureId}`).expect(200);
    expect(read.body).toEqual(receipt);

    // A callback arriving later for the erased scan does not bring the facemap back.
    expect(
      (await sim.sendCallback(active.scanReference, `${vault.url}/webhooks/jumio`)).status,
    ).toBe(200);
    await vault.container.pipeline.runOnce();
    expect((await enrollmentOf(vault, active.scanReference))!.state).toBe('ERASED');
    expect(await keysUnder(active.scanReference)).toEqual([]);
  });

  it('validates the request: reason required, ticket without PII, unknown user 404', async () => {
    const bad = await api(vault).delete('/v1/enrollments/someone', {
      reason: 'because',
      ticket: 'jane@example.com',
      extra: 1,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields.map((f: { field: string }) => f.field).sort()).toEqual([
      'body',
      'body.reason',
      'body.ticket',
    ]);
    await api(vault).delete('/v1/enrollments/nobody-here', { reason: 'other' }).expect(404);
  });

  it('stays PENDING while the blob store fails, and ends with every blob gone after the retry', async () => {
    const { u, active, stray } = await userWithHistory('faulty');
    faults.failing = 1;
    const res = await api(vault).delete(`/v1/enrollments/${u}`, { reason: 'account_closed' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      state: 'PENDING',
      blobKeysDestroyed: null,
      erasedAt: null,
      auditSequence: null,
    });
    expect(res.body.lastError).toMatch(/internal_error/);
    // Nothing is claimed destroyed while a blob remains.
    expect((await keysUnder(active.scanReference)).length).toBeGreaterThan(0);
    expect((await enrollmentOf(vault, active.scanReference))!.state).toBe('ERASED');
    const pending = await api(vault, 'auditor').get(`/v1/erasures/${res.body.erasureId}`);
    expect(pending.body.state).toBe('PENDING');

    clock.advance(60_000);
    expect(await vault.container.erasures.runOnce()).toBeGreaterThanOrEqual(1);
    const done = await api(vault, 'auditor').get(`/v1/erasures/${res.body.erasureId}`).expect(200);
    expect(done.body).toMatchObject({ state: 'DONE', erasureId: res.body.erasureId });
    expect(done.body.blobKeysDestroyed).toEqual([active.record.blobKey, stray].sort());
    expect(await keysUnder(active.scanReference)).toEqual([]);
  });

  it('refuses erasure while a legal hold is in place, and erases once it is released', async () => {
    const { u, active } = await userWithHistory('hold');
    const hold = { reference: 'CASE-77', reason: 'pending litigation' };
    const placed = await api(vault).put(`/v1/enrollments/${u}/legal-hold`, hold).expect(200);
    expect(placed.body).toMatchObject({ userReference: u, ...hold, placedBy: 'admin-svc' });
    const refused = await api(vault).delete(`/v1/enrollments/${u}`, { reason: 'gdpr_art17' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/legal hold/);
    expect(await keysUnder(active.scanReference)).toHaveLength(2);
    expect((await enrollmentOf(vault, active.scanReference))!.state).toBe('ACTIVE');
    await api(vault)
      .delete(`/v1/enrollments/${u}/legal-hold`, { reference: 'CASE-77', reason: 'settled' })
      .expect(200);
    await api(vault)
      .delete(`/v1/enrollments/${u}/legal-hold`, { reference: 'CASE-77', reason: 'again' })
      .expect(404);
    await api(vault).delete(`/v1/enrollments/${u}`, { reason: 'gdpr_art17' }).expect(200);
    const types = (
      await api(vault, 'auditor').get(`/v1/audit-events?userReference=${u}&limit=100`)
    ).body.items.map((e: { type: string }) => e.type);
    expect(types).toEqual(expect.arrayContaining(['legal_hold.placed', 'legal_hold.released']));
  });

  it('purges exactly the enrollments past their retention deadline, skipping legal holds', async () => {
    const old = await onboardActive(vault, user('old'));
    const satisfied = await onboardActive(vault, user('satisfied'));
    const held = await onboardActive(vault, user('held'));
    await api(vault)
      .put(`/v1/enrollments/${held.record.userReference}/legal-hold`, {
        reference: 'CASE-9',
        reason: 'regulator inquiry',
      })
      .expect(200);
    clock.advance(1000 * DAY_MS);
    const recent = await onboardActive(vault, user('recent'));
    const marked = await api(vault)
      .post(`/v1/enrollments/${satisfied.record.userReference}/purpose-satisfied`)
      .expect(200);
    expect(marked.body.enrollments).toBe(1);
    clock.advance(100 * DAY_MS);
    const ours = [old, satisfied, held, recent].map((x) => x.scanReference);

    // What a dry run would list: the old one and the satisfied one, not the held or recent.
    const summary = await api(vault, 'auditor').get('/v1/inventory/summary').expect(200);
    expect(summary.body.retentionPastDue).toBeGreaterThanOrEqual(2);

    await vault.container.schedules.runOnce();
    for (let i = 0; i < 20 && (await vault.container.erasures.runOnce()) > 0; i++);
    const states = await Promise.all(ours.map(async (r) => (await enrollmentOf(vault, r))!));
    expect(states.map((e) => [e.state, e.reason])).toEqual([
      ['ERASED', 'retention'],
      ['ERASED', 'retention'],
      ['ACTIVE', null],
      ['ACTIVE', null],
    ]);
    expect(await keysUnder(old.scanReference)).toEqual([]);
    expect(await keysUnder(satisfied.scanReference)).toEqual([]);
    expect(await keysUnder(held.scanReference)).toHaveLength(1);
    expect(await keysUnder(recent.scanReference)).toHaveLength(1);
    const receipt = await vault.container.ledger.transaction((tx) =>
      tx.erasures.latestForUser(old.record.userReference!),
    );
    expect(receipt).toMatchObject({ state: 'DONE', reason: 'retention', requestedBy: 'system' });
    const listed = await api(vault, 'auditor').get(
      `/v1/audit-events?userReference=${old.record.userReference}&type=retention.purged`,
    );
    expect(listed.body.items).toHaveLength(1);

    // Released, the held one is purged on the next pass.
    await api(vault)
      .delete(`/v1/enrollments/${held.record.userReference}/legal-hold`, {
        reference: 'CASE-9',
        reason: 'closed',
      })
      .expect(200);
    clock.advance(2 * 60 * 60 * 1000);
    await vault.container.schedules.runOnce();
    for (let i = 0; i < 20 && (await vault.container.erasures.runOnce()) > 0; i++);
    expect((await enrollmentOf(vault, held.scanReference))!.state).toBe('ERASED');
    expect((await enrollmentOf(vault, recent.scanReference))!.state).toBe('ACTIVE');
  });
});
