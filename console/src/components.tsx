import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useId, useRef, useState } from 'preact/hooks';
import { type Api, ApiError, type Me, Unauthorized } from './api';

/** The signed-in session: the API client and who it is. */
export interface Session {
  api: Api;
  me: Me;
}
export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a session');
  return session;
}

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` when `key` changes (and on reload()); an answer that arrives after a newer
 * request started is dropped, so a slow page never overwrites a newer one.
 */
export function useLoad<T>(load: () => Promise<T>, key: string): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const latest = useRef(0);
  useEffect(() => {
    const run = ++latest.current;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load().then(
      (data) => run === latest.current && setState({ data, loading: false }),
      (error: unknown) => run === latest.current && setState({ error, loading: false }),
    );
    // `load` is a new closure on every render; `key` says when its inputs changed.
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** An API failure as a sentence (the vault's message is shown as text, never as markup). */
export function errorMessage(error: unknown): string {
  if (error instanceof Unauthorized) return 'The vault no longer accepts this token.';
  if (error instanceof ApiError) {
    if (error.status === 403) return `Not allowed for this key's role: ${error.message}`;
    const fields = error.fields.map((f) => `${f.field}: ${f.message}`).join('; ');
    return `${error.message}${fields && !error.message.includes(fields) ? ` (${fields})` : ''} [${error.status} ${error.code}]`;
  }
  if (error instanceof Error) return `The request failed: ${error.message}`;
  return 'The request failed.';
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="note error" role="alert">
      {errorMessage(error)}
    </p>
  );
}

export function Loading({ loading, label }: { loading: boolean; label: string }) {
  return loading ? (
    <p class="note" role="status">
      Loading {label}…
    </p>
  ) : null;
}

/**
 * A table with a caption, scrollable on a narrow screen; the scroll area is focusable and
 * named, so a keyboard user can scroll it too.
 */
export function DataTable({
  caption,
  children,
  hideCaption = false,
}: {
  caption: string;
  children: ComponentChildren;
  hideCaption?: boolean;
}) {
  const id = useId();
  return (
    <div class="table-wrap" role="region" aria-labelledby={id} tabIndex={0}>
      <table>
        <caption id={id} class={hideCaption ? 'visually-hidden' : undefined}>
          {caption}
        </caption>
        {children}
      </table>
    </div>
  );
}

export function Section({
  title,
  children,
  actions,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  const id = useId();
  return (
    <section class="panel" aria-labelledby={id}>
      <div class="panel-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** The first view after loading keeps the browser's focus (the skip link comes first). */
let firstView = true;

/**
 * Sets the document title and, when the user moved to another view, moves focus to its
 * heading, so that a screen reader announces the new view and Tab starts from there.
 */
export function ViewHeading({ children }: { children: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${children} · Compliance console · Facemap vault`;
    if (firstView) firstView = false;
    else ref.current?.focus({ preventScroll: true });
  }, [children]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/**
 * Previous/next over keyset cursors: the stack of cursors that led to each page. A new
 * `key` (other filters) starts again from the first page, in the same render.
 */
export function usePager(key: string) {
  const [state, setState] = useState<{ key: string; stack: Array<string | null> }>({
    key,
    stack: [null],
  });
  const stack = state.key === key ? state.stack : [null];
  const cursor = stack[stack.length - 1] ?? null;
  return {
    cursor,
    page: stack.length,
    next: (nextCursor: string) => setState({ key, stack: [...stack, nextCursor] }),
    previous: () => setState({ key, stack: stack.length > 1 ? stack.slice(0, -1) : stack }),
    reset: () => setState({ key, stack: [null] }),
  };
}

export function Pager({
  label,
  pager,
  nextCursor,
}: {
  label: string;
  pager: ReturnType<typeof usePager>;
  nextCursor: string | null | undefined;
}) {
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" disabled={pager.page <= 1} onClick={pager.previous}>
        Previous page
      </button>
      <span aria-live="polite">Page {pager.page}</span>
      <button
        type="button"
        disabled={!nextCursor}
        onClick={() => nextCursor && pager.next(nextCursor)}
      >
        Next page
      </button>
    </nav>
  );
}

/** A filter form's values: what is being typed (draft) and what the list shows (applied). */
export function useFilters<F extends { limit: string }>(empty: F) {
  const [draft, setDraft] = useState<F>(empty);
  const [applied, setApplied] = useState<F>(empty);
  return {
    draft,
    applied,
    set: (field: keyof F) => (event: Event) =>
      setDraft({ ...draft, [field]: (event.currentTarget as HTMLInputElement).value }),
    apply: () => setApplied(draft),
    clear: () => {
      setDraft(empty);
      setApplied(empty);
    },
  };
}

/** The filter form of a paged list: its own fields, rows per page, apply and clear. */
export function FilterForm<F extends { limit: string }>({
  label,
  filters,
  rowChoices,
  children,
}: {
  label: string;
  filters: ReturnType<typeof useFilters<F>>;
  rowChoices: string[];
  children: ComponentChildren;
}) {
  return (
    <form
      class="filters"
      aria-label={label}
      onSubmit={(e) => {
        e.preventDefault();
        filters.apply();
      }}
    >
      {children}
      <label>
        Rows per page
        <select value={filters.draft.limit} onChange={filters.set('limit')}>
          {rowChoices.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <div class="actions">
        <button type="submit">Apply filters</button>
        <button type="button" class="secondary" onClick={filters.clear}>
          Clear
        </button>
      </div>
    </form>
  );
}
