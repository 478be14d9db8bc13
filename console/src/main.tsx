import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Api, ApiError, type Me, Unauthorized, whoAmI } from './api';
import { SessionContext, type Session } from './components';
import { type Route, useRoute } from './router';
import './styles.css';
import { AuditTrail } from './views/AuditTrail';
import { Erasures } from './views/Erasures';
import { Inventory } from './views/Inventory';
import { Overview } from './views/Overview';
import { UserDetail } from './views/UserDetail';

/** sessionStorage only: gone when the tab closes, never sent anywhere but the header. */
const TOKEN_KEY = 'facemap-vault-console-token';
const CONSOLE_ROLES: ReadonlyArray<Me['role']> = ['auditor', 'admin'];

const SESSION_ENDED =
  'Your session ended: the vault no longer accepts this token (401). Sign in again.';

function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [restoring, setRestoring] = useState(() => readToken() !== null);

  function signOut(message: string | null) {
    sessionStorage.removeItem(TOKEN_KEY);
    setSession(null);
    setNotice(message);
  }

  /** Asks the vault who the token is; keeps it only when it is accepted and may read. */
  async function signIn(token: string): Promise<void> {
    const me = await whoAmI(token);
    if (!CONSOLE_ROLES.includes(me.role)) {
      throw new Error(
        `This token is the key "${me.name}" with the role ${me.role}: the console needs an auditor or admin key.`,
      );
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    setNotice(null);
    setSession({ api: new Api(token, () => signOut(SESSION_ENDED)), me });
  }

  // A reload keeps the session (same tab): check the stored token again.
  useEffect(() => {
    const token = readToken();
    if (!token) return;
    signIn(token)
      .catch((error: unknown) =>
        signOut(error instanceof Unauthorized ? SESSION_ENDED : signInMessage(error)),
      )
      .finally(() => setRestoring(false));
  }, []);

  if (restoring) {
    return (
      <p class="note" role="status">
        Checking your session…
      </p>
    );
  }
  if (!session) return <SignIn notice={notice} onSignIn={signIn} />;
  return (
    <SessionContext.Provider value={session}>
      <Shell me={session.me} onSignOut={() => signOut('You signed out.')} />
    </SessionContext.Provider>
  );
}

function signInMessage(error: unknown): string {
  if (error instanceof Unauthorized) {
    return 'The vault did not accept this token (401): check that you pasted the whole token, or ask for a new one.';
  }
  if (error instanceof ApiError) return `Sign-in failed: ${error.message} [${error.status}]`;
  if (error instanceof TypeError) return 'The vault could not be reached. Try again.';
  return error instanceof Error ? error.message : 'Sign-in failed.';
}

function SignIn({
  notice,
  onSignIn,
}: {
  notice: string | null;
  onSignIn: (token: string) => Promise<void>;
}) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = 'Sign in · Compliance console · Facemap vault';
    input.current?.focus();
  }, []);

  return (
    <main class="signin">
      <h1>Compliance console</h1>
      <p>
        Facemap vault inventory, retention and audit trail. Sign in with an API token of an{' '}
        <code>auditor</code> or <code>admin</code> key.
      </p>
      {notice && !error && (
        <p class="note" role="alert">
          {notice}
        </p>
      )}
      {/* No name on the field and no action: the token is never submitted as a form. */}
      <form
        aria-label="Sign in"
        onSubmit={async (e) => {
          e.preventDefault();
          const value = token.trim();
          if (!value) return;
          setBusy(true);
          setError(null);
          try {
            await onSignIn(value);
          } catch (err) {
            setError(signInMessage(err));
            setBusy(false);
            input.current?.select();
          }
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          ref={input}
          type="password"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          autoComplete="off"
          spellcheck={false}
          aria-describedby="token-help"
          aria-invalid={error ? true : undefined}
          required
        />
        <p id="token-help" class="note">
          Kept in this tab's session storage only, sent to this vault only, as{' '}
          <code>Authorization: Bearer</code>.
        </p>
        {error && (
          <p class="note error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

const NAV: Array<{ view: Route['view']; href: string; label: string }> = [
  { view: 'overview', href: '#/overview', label: 'Overview' },
  { view: 'inventory', href: '#/inventory', label: 'Inventory' },
  { view: 'user', href: '#/users', label: 'User detail' },
  { view: 'audit', href: '#/audit', label: 'Audit trail' },
  { view: 'erasures', href: '#/erasures', label: 'Erasures' },
];

function Shell({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  const view = useMemo(() => {
    switch (route.view) {
      case 'inventory':
        return <Inventory />;
      case 'user':
        return <UserDetail key={route.userReference ?? ''} userReference={route.userReference} />;
      case 'audit':
        return <AuditTrail />;
      case 'erasures':
        return <Erasures />;
      default:
        return <Overview />;
    }
  }, [route.view, route.view === 'user' ? route.userReference : null]);

  return (
    <>
      <button type="button" class="skip" onClick={() => main.current?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <div class="brand">
          Facemap vault <span>Compliance console</span>
        </div>
        <div class="who">
          <span>
            Signed in as <strong>{me.name}</strong> ({me.role})
          </span>
          <button type="button" class="secondary" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <nav class="views" aria-label="Views">
        <ul>
          {NAV.map((n) => (
            <li key={n.view}>
              <a href={n.href} aria-current={route.view === n.view ? 'page' : undefined}>
                {n.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main ref={main} tabIndex={-1}>
        {view}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
