import { AuthenticationJob } from '../../src/core/authentication/reconcile';
import type { JumioApi } from '../../src/core/jumio';
import type { AuthenticationRecord } from '../../src/core/ports';
import { systemClock } from '../../src/core/ports';
import { captureLogs } from '../helpers/logs';

const row = (over: Partial<AuthenticationRecord>): AuthenticationRecord => ({
  authenticationReference: 'a1',
  enrollmentReference: 'e1',
  userReference: 'u1',
  state: 'INITIATED',
  reason: null,
  source: null,
  purpose: 'p',
  requestedBy: 'svc',
  redirectUrl: null,
  notifyUrl: null,
  createdAt: new Date(0),
  updatedAt: new Date(0),
  expiresAt: new Date(15 * 60_000),
  finalizedAt: null,
  jumioDeletedAt: null,
  attempts: 0,
  nextAttemptAt: null,
  lastError: null,
  leaseOwner: null,
  leaseUntil: null,
  ...over,
});

describe('AuthenticationJob steps', () => {
  const job = (deleteAtJumio: boolean) =>
    new AuthenticationJob(
      { jumio: {} as JumioApi, clock: systemClock, logger: captureLogs().logger },
      { deleteAtJumio, notifyDefaultUrl: undefined, reconcileGraceMs: 120_000 },
    );

  it('reconciles INITIATED rows and deletes final ones at Jumio once', () => {
    const j = job(true);
    expect(j.stepOf(row({}))).toBe('reconcile');
    expect(j.stepOf(row({ state: 'PASSED' }))).toBe('delete_at_jumio');
    expect(j.stepOf(row({ state: 'EXPIRED', jumioDeletedAt: new Date() }))).toBeNull();
  });

  it('leaves Jumio its copy with JUMIO_DELETE_AUTHENTICATIONS=false', () => {
    const j = job(false);
    expect(j.stepOf(row({}))).toBe('reconcile');
    expect(j.stepOf(row({ state: 'FAILED' }))).toBeNull();
  });

  it('does not ask Jumio before expiresAt and the grace period are past', async () => {
    const expiresAt = new Date(Date.now() + 60_000);
    const result = await job(true).perform(row({ expiresAt }), 'reconcile');
    expect(result.apply).toBeUndefined();
    expect(result.nextAttemptAt).toEqual(new Date(expiresAt.getTime() + 120_000));
  });
});
