import { InvalidRequestError } from '../enrollment/admin';
import { notifyUrlProblem } from '../notifications/urls';
import type { AuthenticationState, ListPosition } from '../ports';
import { AuthenticationError } from './errors';
import {
  type InitiateDeps,
  type InitiateInput,
  type InitiateResult,
  type InitiateSettings,
  Initiation,
} from './initiate';
import { toAuthenticationView, type AuthenticationView } from './view';

export interface AuthenticationServiceSettings extends InitiateSettings {
  /** VAULT_NOTIFY_ALLOWED_ORIGINS. */
  notifyAllowedOrigins: readonly string[];
}

/** A keyset position, opaque to callers. */
export function encodeCursor(position: ListPosition): string {
  return Buffer.from(JSON.stringify([position.createdAt.toISOString(), position.key])).toString(
    'base64url',
  );
}

export function decodeCursor(cursor: string): ListPosition | null {
  try {
    const [at, key] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    const createdAt = new Date(String(at));
    if (typeof key !== 'string' || Number.isNaN(createdAt.getTime())) return null;
    return { createdAt, key };
  } catch {
    return null;
  }
}

/** The position after `cursor`, or a 400 when it is not one this API handed out. */
export function positionOf(cursor: string | undefined): ListPosition | undefined {
  if (cursor === undefined) return undefined;
  const position = decodeCursor(cursor);
  if (!position) throw new InvalidRequestError('cursor is not one this API returned');
  return position;
}

/** The authentication use cases the HTTP layer offers. */
export class AuthenticationService {
  private readonly initiation: Initiation;

  constructor(
    private readonly deps: InitiateDeps,
    readonly settings: AuthenticationServiceSettings,
  ) {
    this.initiation = new Initiation(deps, settings);
  }

  initiate(
    input: InitiateInput,
    caller: string,
    idempotencyKey?: string,
  ): Promise<{ result: InitiateResult; replayed: boolean }> {
    return this.initiation.initiate(input, caller, idempotencyKey);
  }

  /** Why `url` may not be a notifyUrl, or null. */
  notifyUrlProblem(url: string): string | null {
    return notifyUrlProblem(url, this.settings.notifyAllowedOrigins);
  }

  async get(authenticationReference: string): Promise<AuthenticationView> {
    const a = await this.deps.ledger.transaction((tx) =>
      tx.authentications.get(authenticationReference),
    );
    if (!a) throw new AuthenticationError('not_found', 'no authentication with this reference');
    return toAuthenticationView(a);
  }

  /** Newest first; `nextCursor` while more may follow. */
  async list(filter: {
    userReference?: string;
    state?: AuthenticationState;
    limit: number;
    cursor?: string;
  }): Promise<{ authentications: AuthenticationView[]; nextCursor?: string }> {
    const after = positionOf(filter.cursor);
    const rows = await this.deps.ledger.transaction((tx) =>
      tx.authentications.list({
        ...(filter.userReference !== undefined ? { userReference: filter.userReference } : {}),
        ...(filter.state !== undefined ? { state: filter.state } : {}),
        limit: filter.limit,
        ...(after ? { after } : {}),
      }),
    );
    const last = rows.at(-1);
    return {
      authentications: rows.map(toAuthenticationView),
      ...(last && rows.length === filter.limit
        ? {
            nextCursor: encodeCursor({
              createdAt: last.createdAt,
              key: last.authenticationReference,
            }),
          }
        : {}),
    };
  }
}
