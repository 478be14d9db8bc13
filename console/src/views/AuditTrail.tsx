import { useRef, useState } from 'preact/hooks';
import type { AuditEvent, Page, Verification } from '../api';
import {
  DataTable,
  ErrorNote,
  Loading,
  FilterForm,
  Pager,
  useFilters,
  Section,
  usePager,
  useLoad,
  useSession,
  ViewHeading,
} from '../components';
import { count, dayStart, detailText, when } from '../format';
import { userHref } from '../router';

/** The entry types the vault writes, offered as suggestions (any type can be typed). */
const TYPES = [
  'audit.verified',
  'authentication.finalized',
  'authentication.initiated',
  'enrollment.activated',
  'enrollment.erased',
  'enrollment.received',
  'enrollment.rejected',
  'erasure.requested',
  'facemap.decrypted',
  'facemap.destroyed',
  'facemap.stored',
  'legal_hold.placed',
  'legal_hold.released',
  'request.denied',
  'retention.purpose_satisfied',
];

interface Filters {
  type: string;
  userReference: string;
  enrollmentReference: string;
  after: string;
  before: string;
  limit: string;
}

const NO_FILTERS: Filters = {
  type: '',
  userReference: '',
  enrollmentReference: '',
  after: '',
  before: '',
  limit: '50',
};

export function AuditTrail() {
  const { api } = useSession();
  const filters = useFilters(NO_FILTERS);
  const { draft, applied, set } = filters;
  const key = JSON.stringify(applied);
  const pager = usePager(key);
  const page = useLoad(
    () =>
      api.get<Page<AuditEvent>>('/v1/audit-events', {
        type: applied.type.trim(),
        userReference: applied.userReference.trim(),
        enrollmentReference: applied.enrollmentReference.trim(),
        after: dayStart(applied.after),
        before: dayStart(applied.before),
        limit: applied.limit,
        cursor: pager.cursor,
      }),
    `${key} ${pager.cursor ?? ''}`,
  );
  return (
    <>
      <ViewHeading>Audit trail</ViewHeading>
      <VerifyNow />
      <FilterForm
        label="Audit trail filters"
        filters={filters}
        rowChoices={['25', '50', '100', '250']}
      >
        <label>
          Entry type
          <input
            type="text"
            list="audit-types"
            value={draft.type}
            onInput={set('type')}
            autoComplete="off"
            spellcheck={false}
          />
          <datalist id="audit-types">
            {TYPES.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </label>
        <label>
          User reference
          <input
            type="text"
            value={draft.userReference}
            onInput={set('userReference')}
            autoComplete="off"
            spellcheck={false}
          />
        </label>
        <label>
          Enrollment reference
          <input
            type="text"
            value={draft.enrollmentReference}
            onInput={set('enrollmentReference')}
            autoComplete="off"
            spellcheck={false}
          />
        </label>
        <label>
          On or after
          <input type="date" value={draft.after} onInput={set('after')} />
        </label>
        <label>
          Before
          <input type="date" value={draft.before} onInput={set('before')} />
        </label>
      </FilterForm>

      <ErrorNote error={page.error} />
      <Loading loading={page.loading} label="the audit trail" />
      {page.data && (
        <>
          <DataTable caption={`Audit entries, page ${pager.page}`}>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">When</th>
                <th scope="col">What</th>
                <th scope="col">Who</th>
                <th scope="col">User reference</th>
                <th scope="col">Enrollment</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.length === 0 && (
                <tr>
                  <td colSpan={7}>No audit entry matches these filters.</td>
                </tr>
              )}
              {page.data.items.map((e) => (
                <tr key={e.seq}>
                  <th scope="row" class="num">
                    {e.seq}
                  </th>
                  <td>{when(e.at)}</td>
                  <td>{e.type}</td>
                  <td>{e.actor}</td>
                  <td>
                    {e.userReference ? (
                      <a href={userHref(e.userReference)}>{e.userReference}</a>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td class="mono">{e.enrollmentReference ?? '—'}</td>
                  <td class="wrap">
                    {Object.entries(e.details)
                      .map(([k, v]) => `${k}: ${detailText(v)}`)
                      .join('; ')}
                  </td>
                </tr>
              ))}
            </tbody>
          </DataTable>
          <Pager label="Audit trail" pager={pager} nextCursor={page.data.nextCursor} />
        </>
      )}
    </>
  );
}

/** Recomputes the chain and checks every signed digest (the vault records the check). */
function VerifyNow() {
  const { api } = useSession();
  const [state, setState] = useState<{
    running: boolean;
    result?: Verification & { finishedAt: string };
    error?: unknown;
  }>({ running: false });
  const resultRef = useRef<HTMLDivElement>(null);

  async function verify() {
    setState({ running: true });
    try {
      const result = await api.get<Verification>('/v1/audit/verify');
      setState({ running: false, result: { ...result, finishedAt: new Date().toISOString() } });
    } catch (error) {
      setState({ running: false, error });
    }
    resultRef.current?.focus();
  }

  const r = state.result;
  return (
    <Section
      title="Chain verification"
      actions={
        <button type="button" onClick={verify} disabled={state.running}>
          {state.running ? 'Verifying…' : 'Verify now'}
        </button>
      }
    >
      <div
        ref={resultRef}
        tabIndex={-1}
        role="status"
        aria-label="Verification result"
        class="verify-result"
      >
        {state.running && <p>Recomputing the chain and checking the signed digests…</p>}
        <ErrorNote error={state.error} />
        {r?.ok && (
          <p class="ok">
            Verified: the audit trail is intact through entry {count(r.checkedThrough)} (
            {count(r.digestsChecked)} signed digests checked), {when(r.finishedAt)}.
          </p>
        )}
        {r && !r.ok && (
          <p class="bad">
            Broken: the first entry that cannot be trusted is {count(r.brokenAt)} ({r.reason}).{' '}
            {r.message}. Entries through {count(r.checkedThrough)} verified.
          </p>
        )}
        {!r && !state.running && !state.error && (
          <p class="note">
            Verification recomputes every entry's hash and checks it against the digests signed
            outside the database.
          </p>
        )}
      </div>
    </Section>
  );
}
