import { VaultError } from '../errors';

export type AuthenticationErrorCode =
  /** No enrollment for the user (404). */
  | 'not_found'
  /** The user's enrollment is not ACTIVE (409); `details.state` names its state. */
  | 'enrollment_not_active'
  /** Another initiate for the same enrollment is in flight (409). */
  | 'authentication_in_progress'
  /** The first request with this Idempotency-Key is still in flight (409). */
  | 'idempotency_in_progress'
  /** The Idempotency-Key was used with another body (422). */
  | 'idempotency_key_reused'
  /** AUTH_MAX_PER_USER_PER_HOUR reached (429); `details.retryAfterSeconds`. */
  | 'rate_limited'
  /** The stored facemap is not this enrollment's, or is damaged (500); nothing was sent. */
  | 'facemap_integrity'
  /** Jumio refused the vault's credentials (502). */
  | 'jumio_unauthorized'
  /** Jumio refused the request with another 4xx (502); `details.jumioStatus`, `jumioCode`. */
  | 'jumio_request_rejected'
  /** Jumio answered something unusable (502). */
  | 'jumio_invalid_response'
  /** Jumio is down, slow or rate limiting (503); the initiate is not retried automatically. */
  | 'jumio_unavailable';

export interface AuthenticationErrorDetails {
  state?: string;
  retryAfterSeconds?: number;
  jumioStatus?: number;
  jumioCode?: string;
}

/** A refusal of the authentication use cases. Messages carry no bytes and no PII. */
export class AuthenticationError extends VaultError {
  constructor(
    override readonly code: AuthenticationErrorCode,
    message: string,
    readonly details: AuthenticationErrorDetails = {},
  ) {
    super(code, message);
  }
}
