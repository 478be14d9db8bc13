import type { AuthenticationRecord, AuthenticationSource, AuthenticationState } from '../ports';

/** What the read API and the notifications show of an authentication. */
export interface AuthenticationView {
  authenticationReference: string;
  userReference: string;
  enrollmentReference: string;
  state: AuthenticationState;
  reason?: string;
  purpose: string;
  requestedBy: string;
  createdAt: string;
  expiresAt: string;
  finalizedAt?: string;
  source?: AuthenticationSource;
  jumioDeletedAt?: string;
}

export function toAuthenticationView(a: AuthenticationRecord): AuthenticationView {
  return {
    authenticationReference: a.authenticationReference,
    userReference: a.userReference,
    enrollmentReference: a.enrollmentReference,
    state: a.state,
    ...(a.reason ? { reason: a.reason } : {}),
    purpose: a.purpose,
    requestedBy: a.requestedBy,
    createdAt: a.createdAt.toISOString(),
    expiresAt: a.expiresAt.toISOString(),
    ...(a.finalizedAt ? { finalizedAt: a.finalizedAt.toISOString() } : {}),
    ...(a.source ? { source: a.source } : {}),
    ...(a.jumioDeletedAt ? { jumioDeletedAt: a.jumioDeletedAt.toISOString() } : {}),
  };
}
