import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, type AuditEvent, type Authentication, type Enrollment, type Page } from '../api';
import {
  DataTable,
  ErrorNote,
  Loading,
  Section,
  useLoad,
  useSession,
  ViewHeading,
} from '../components';
import { detailText, when } from '../format';
import { userHref } from '../router';

/** Detail fields that say why something happened, in the order they are looked for. */
const WHY = ['purpose', 'reason', 'transactionResult', 'decision', 'ticket'] as const;

export function UserDetail({ userReference }: { userReference: string | null }) {
  return (
    <>
      <ViewHeading>{userReference ? `User ${userReference}` : 'User detail'}</ViewHeading>
      <Lookup current={userReference} />
      {userReference && <UserRecords key={userReference} userReference={userReference} />}
    </>
  );
}

function Lookup({ current }: { current: string | null }) {
  const [value, setValue] = useState(current ?? '');
  return (
    <form
      class="filters"
      aria-label="Open a user"
      onSubmit={(e) => {
        e.preventDefault();
        const ref = value.trim();
        if (ref) location.hash = userHref(ref);
      }}
    >
      <label>
        User reference
        <input
          type="text"
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          autoComplete="off"
          spellcheck={false}
          required
        />
      </label>
      <div class="actions">
        <button type="submit">Open</button>
      </div>
    </form>
  );
}

function UserRecords({ userReference }: { userReference: string }) {
  const { api } = useSession();
  const path = `/v1/enrollments/${encodeURIComponent(userReference)}`;
  const enrollment = useLoad(async () => {
    try {
      return await api.get<Enrollment>(path);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }, path);
  const authentications = useLoad(
    () =>
      api.get<{ authentications: Authentication[]; nextCursor?: string }>('/v1/authentications', {
        userReference,
        limit: 100,
      }),
    `auth ${userReference}`,
  );
  const [timeline, setTimeline] = useState<AuditEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const trail = useLoad(
    async () => {
      const page = await api.get<Page<AuditEvent>>('/v1/audit-events', {
        userReference,
        limit: 200,
        cursor,
      });
      setTimeline((t) => [...(cursor ? t : []), ...page.items]);
      return page;
    },
    `trail ${userReference} ${cursor ?? ''}`,
  );

  return (
    <>
      <Section title="Enrollments">
        <ErrorNote error={enrollment.error} />
        <Loading loading={enrollment.loading} label="the enrollments" />
        {enrollment.data === null && <p class="note">No enrollment for this user reference.</p>}
        {enrollment.data && (
          <DataTable caption="Enrollments of this user" hideCaption>
            <thead>
              <tr>
                <th scope="col">Enrollment</th>
                <th scope="col">State</th>
                <th scope="col">Reason</th>
                <th scope="col">Created</th>
                <th scope="col">Activated</th>
                <th scope="col">Key</th>
              </tr>
            </thead>
            <tbody>
              {[enrollment.data, ...enrollment.data.history].map((e, i) => (
                <tr key={e.enrollmentReference}>
                  <th scope="row" class="mono">
                    {e.enrollmentReference}
                  </th>
                  <td>
                    <span class={`state state-${e.state.toLowerCase()}`}>{e.state}</span>
                    {i === 0 && <span class="sub">current</span>}
                  </td>
                  <td>{e.reason ?? '—'}</td>
                  <td>{when(e.createdAt)}</td>
                  <td>{i === 0 ? when(enrollment.data!.activatedAt) : '—'}</td>
                  <td class="mono">{i === 0 ? (enrollment.data!.keyId ?? '—') : '—'}</td>
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>

      <Section title="Authentications">
        <ErrorNote error={authentications.error} />
        <Loading loading={authentications.loading} label="the authentications" />
        {authentications.data && (
          <DataTable caption="Authentications of this user" hideCaption>
            <thead>
              <tr>
                <th scope="col">Authentication</th>
                <th scope="col">State</th>
                <th scope="col">Purpose</th>
                <th scope="col">Requested by</th>
                <th scope="col">Started</th>
                <th scope="col">Finished</th>
              </tr>
            </thead>
            <tbody>
              {authentications.data.authentications.length === 0 && (
                <tr>
                  <td colSpan={6}>No authentication.</td>
                </tr>
              )}
              {authentications.data.authentications.map((a) => (
                <tr key={a.authenticationReference}>
                  <th scope="row" class="mono">
                    {a.authenticationReference}
                  </th>
                  <td>
                    {a.state}
                    {a.reason && <span class="sub">{a.reason}</span>}
                  </td>
                  <td class="wrap">{a.purpose}</td>
                  <td>{a.requestedBy}</td>
                  <td>{when(a.createdAt)}</td>
                  <td>{when(a.finalizedAt)}</td>
                </tr>
              ))}
            </tbody>
          </DataTable>
        )}
      </Section>

      <Section title="Timeline">
        <p class="note">Every audit entry about this user, oldest first: who, what, why, when.</p>
        <ErrorNote error={trail.error} />
        <ol class="timeline" aria-label={`Audit timeline of ${userReference}`}>
          {timeline.map((e) => (
            <TimelineEntry key={e.seq} entry={e} />
          ))}
        </ol>
        <Loading loading={trail.loading} label="the audit entries" />
        {!trail.loading && timeline.length === 0 && !trail.error && (
          <p class="note">No audit entry names this user.</p>
        )}
        {trail.data?.nextCursor && (
          <button type="button" onClick={() => setCursor(trail.data!.nextCursor)}>
            Load more entries
          </button>
        )}
      </Section>
    </>
  );
}

function TimelineEntry({ entry }: { entry: AuditEvent }) {
  const why = WHY.map((k) => entry.details[k]).find((v) => v !== undefined && v !== null);
  const other = Object.entries(entry.details).filter(
    ([k]) => !(WHY as readonly string[]).includes(k),
  );
  return (
    <li>
      <div class="timeline-head">
        <time dateTime={entry.at}>{when(entry.at)}</time>
        <strong class="what">{entry.type}</strong>
        <span class="who">by {entry.actor}</span>
        <span class="seq">#{entry.seq}</span>
      </div>
      {why !== undefined && <p class="why">Why: {detailText(why)}</p>}
      <dl class="details">
        {entry.enrollmentReference && (
          <>
            <dt>Enrollment</dt>
            <dd class="mono">{entry.enrollmentReference}</dd>
          </>
        )}
        {entry.authenticationReference && (
          <>
            <dt>Authentication</dt>
            <dd class="mono">{entry.authenticationReference}</dd>
          </>
        )}
        {other.map(([k, v]) => (
          <Fragment key={k}>
            <dt>{k}</dt>
            <dd>{detailText(v)}</dd>
          </Fragment>
        ))}
      </dl>
    </li>
  );
}
