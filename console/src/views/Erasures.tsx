import { useEffect, useRef, useState } from 'preact/hooks';
import { ERASURE_REASONS, type ErasureReason, type Page, type Receipt } from '../api';
import {
  DataTable,
  ErrorNote,
  Loading,
  Pager,
  Section,
  usePager,
  useLoad,
  useSession,
  ViewHeading,
} from '../components';
import { count, when } from '../format';
import { userHref } from '../router';

const REASON_LABELS: Record<ErasureReason, string> = {
  gdpr_art17: 'GDPR Art. 17 request',
  account_closed: 'Account closed',
  consent_withdrawn: 'Consent withdrawn',
  retention: 'Retention period over',
  other: 'Other',
};

export function Erasures() {
  const { api, me } = useSession();
  const pager = usePager('erasures');
  const [version, setVersion] = useState(0);
  const page = useLoad(
    () => api.get<Page<Receipt>>('/v1/erasures', { limit: 25, cursor: pager.cursor }),
    `${pager.cursor ?? ''} ${version}`,
  );

  return (
    <>
      <ViewHeading>Erasures</ViewHeading>
      {me.role === 'admin' && (
        <EraseForm
          onErased={() => {
            pager.reset();
            setVersion((v) => v + 1);
          }}
        />
      )}
      <Section title="Receipts">
        <ErrorNote error={page.error} />
        <Loading loading={page.loading} label="the erasures" />
        {page.data && (
          <>
            <DataTable caption={`Erasure receipts, page ${pager.page}`} hideCaption>
              <thead>
                <tr>
                  <th scope="col">User reference</th>
                  <th scope="col">State</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Ticket</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Erased</th>
                  <th scope="col" class="num">
                    Enrollments
                  </th>
                  <th scope="col" class="num">
                    Blobs destroyed
                  </th>
                  <th scope="col" class="num">
                    Audit entry
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.data.items.length === 0 && (
                  <tr>
                    <td colSpan={9}>No erasure yet.</td>
                  </tr>
                )}
                {page.data.items.map((r) => (
                  <tr key={r.erasureId}>
                    <th scope="row">
                      <a href={userHref(r.userReference)}>{r.userReference}</a>
                    </th>
                    <td>
                      {r.state}
                      {r.lastError && <span class="sub">{r.lastError}</span>}
                    </td>
                    <td>{REASON_LABELS[r.reason] ?? r.reason}</td>
                    <td>{r.ticket ?? '—'}</td>
                    <td>
                      {when(r.requestedAt)} by {r.requestedBy}
                    </td>
                    <td>{when(r.erasedAt)}</td>
                    <td class="num">{count(r.enrollmentReferences.length)}</td>
                    <td class="num">{count(r.blobKeysDestroyed?.length)}</td>
                    <td class="num">{r.auditSequence ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </DataTable>
            <Pager label="Erasures" pager={pager} nextCursor={page.data.nextCursor} />
          </>
        )}
      </Section>
    </>
  );
}

/**
 * Admin only (the API refuses other roles too). Two steps: the request, then a confirmation
 * that only goes through once the user reference is typed again, exactly.
 */
function EraseForm({ onErased }: { onErased: () => void }) {
  const { api } = useSession();
  const [userReference, setUserReference] = useState('');
  const [reason, setReason] = useState<ErasureReason>('gdpr_art17');
  const [ticket, setTicket] = useState('');
  const [pending, setPending] = useState<{
    userReference: string;
    reason: ErasureReason;
    ticket: string;
  } | null>(null);
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ receipt?: Receipt; error?: unknown } | null>(null);
  const confirmRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (pending) confirmRef.current?.focus();
  }, [pending]);

  async function erase() {
    if (!pending || typed !== pending.userReference) return;
    setBusy(true);
    try {
      const receipt = await api.send<Receipt>(
        'DELETE',
        `/v1/enrollments/${encodeURIComponent(pending.userReference)}`,
        { reason: pending.reason, ...(pending.ticket ? { ticket: pending.ticket } : {}) },
      );
      setOutcome({ receipt });
      setPending(null);
      setUserReference('');
      setTicket('');
      onErased();
    } catch (error) {
      setOutcome({ error });
    } finally {
      setBusy(false);
      setTyped('');
    }
  }

  return (
    <Section title="Erase a user's facemaps">
      <p class="note">
        Destroys every facemap version of the user and leaves a receipt. It cannot be undone; a
        legal hold prevents it.
      </p>
      <form
        class="filters"
        aria-label="Erasure request"
        onSubmit={(e) => {
          e.preventDefault();
          setOutcome(null);
          setTyped('');
          setPending({ userReference: userReference.trim(), reason, ticket: ticket.trim() });
        }}
      >
        <label>
          User reference
          <input
            type="text"
            value={userReference}
            onInput={(e) => setUserReference(e.currentTarget.value)}
            autoComplete="off"
            spellcheck={false}
            required
          />
        </label>
        <label>
          Reason
          <select
            value={reason}
            onChange={(e) => setReason(e.currentTarget.value as ErasureReason)}
          >
            {ERASURE_REASONS.map((r) => (
              <option key={r} value={r}>
                {REASON_LABELS[r]}
              </option>
            ))}
          </select>
        </label>
        <label>
          Ticket (optional)
          <input
            type="text"
            value={ticket}
            onInput={(e) => setTicket(e.currentTarget.value)}
            autoComplete="off"
            spellcheck={false}
          />
        </label>
        <div class="actions">
          <button type="submit" class="danger">
            Erase…
          </button>
        </div>
      </form>

      {pending && (
        <form
          class="confirm"
          aria-label="Confirm the erasure"
          onSubmit={(e) => {
            e.preventDefault();
            void erase();
          }}
        >
          <p>
            Erase every facemap of <strong>{pending.userReference}</strong> (
            {REASON_LABELS[pending.reason]}
            {pending.ticket ? `, ticket ${pending.ticket}` : ''})? Type the user reference to
            confirm.
          </p>
          <label>
            Type the user reference to confirm
            <input
              ref={confirmRef}
              type="text"
              value={typed}
              onInput={(e) => setTyped(e.currentTarget.value)}
              autoComplete="off"
              spellcheck={false}
            />
          </label>
          <div class="actions">
            <button type="submit" class="danger" disabled={busy || typed !== pending.userReference}>
              {busy ? 'Erasing…' : 'Erase permanently'}
            </button>
            <button type="button" class="secondary" onClick={() => setPending(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}

      <div role="status">
        {outcome?.receipt && (
          <p class="ok">
            {outcome.receipt.state === 'DONE'
              ? `Erased ${outcome.receipt.userReference}: ${count(outcome.receipt.blobKeysDestroyed?.length)} blobs destroyed, receipt ${outcome.receipt.erasureId}.`
              : `Erasure of ${outcome.receipt.userReference} accepted (PENDING): the vault retries until every blob is gone. Receipt ${outcome.receipt.erasureId}.`}
          </p>
        )}
      </div>
      <ErrorNote error={outcome?.error} />
    </Section>
  );
}
