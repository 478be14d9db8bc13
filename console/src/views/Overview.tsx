import type {
  AuditStatus,
  FacemapMonth,
  LegalHold,
  Page,
  RetentionSchedule,
  Summary,
} from '../api';
import { ENROLLMENT_STATES } from '../api';
import { Chart } from '../chart';
import {
  DataTable,
  ErrorNote,
  Loading,
  Section,
  useLoad,
  useSession,
  ViewHeading,
} from '../components';
import { bytes, count, monthLabel, when } from '../format';
import { userHref } from '../router';

/** States whose facemap is held (encrypted) by the vault. */
const HOLDING = ['STORED', 'ACTIVE', 'PARKED'] as const;

export function Overview() {
  const { api } = useSession();
  const summary = useLoad(() => api.get<Summary>('/v1/inventory/summary'), 'summary');
  const history = useLoad(
    () => api.get<{ months: FacemapMonth[] }>('/v1/inventory/history', { months: 24 }),
    'history',
  );
  const schedule = useLoad(
    () => api.get<RetentionSchedule>('/v1/inventory/retention-schedule', { months: 36 }),
    'schedule',
  );
  const holds = useLoad(() => api.get<Page<LegalHold>>('/v1/legal-holds', { limit: 50 }), 'holds');
  const status = useLoad(() => api.get<AuditStatus>('/v1/audit/status'), 'status');
  const s = summary.data;

  return (
    <>
      <ViewHeading>Overview</ViewHeading>
      <ErrorNote error={summary.error} />
      <Loading loading={summary.loading && !s} label="the inventory summary" />
      {s && (
        <dl class="figures" aria-label="Key figures">
          <Figure
            label="Facemaps held"
            value={count(HOLDING.reduce((n, state) => n + (s.byState[state] ?? 0), 0))}
          />
          <Figure label="Encrypted size" value={bytes(s.facemapBytes)} />
          <Figure label="Retention past due" value={count(s.retentionPastDue)} />
          <Figure label="Due within 30 days" value={count(s.retentionDueWithin30Days)} />
          <Figure label="Legal holds" value={count(s.legalHolds)} />
          <Figure label="Retention period" value={`${count(s.retentionDays)} days`} />
        </dl>
      )}

      <div class="grid">
        <Section title="Enrollments by state">
          {s && (
            <DataTable caption="Enrollments by state" hideCaption>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col" class="num">
                    Enrollments
                  </th>
                </tr>
              </thead>
              <tbody>
                {ENROLLMENT_STATES.map((state) => (
                  <tr key={state}>
                    <th scope="row">
                      <span class={`state state-${state.toLowerCase()}`}>{state}</span>
                    </th>
                    <td class="num">{count(s.byState[state] ?? 0)}</td>
                  </tr>
                ))}
              </tbody>
            </DataTable>
          )}
          {s?.oldestActive && (
            <p class="note">
              Oldest active facemap: {s.oldestActive.enrollmentReference}, active since{' '}
              {when(s.oldestActive.activatedAt)}.
            </p>
          )}
        </Section>

        <Section title="Audit chain">
          <ErrorNote error={status.error} />
          {status.data && <ChainStatus status={status.data} />}
          <p>
            <a href="#/audit">Open the audit trail to verify it now</a>
          </p>
        </Section>
      </div>

      <Section title="Facemaps stored over time">
        <ErrorNote error={history.error} />
        {history.data && <History months={history.data.months} />}
      </Section>

      <Section title="Retention deadlines, next 36 months">
        <ErrorNote error={schedule.error} />
        {schedule.data && <Schedule schedule={schedule.data} />}
      </Section>

      <div class="grid">
        <Section title="Legal holds">
          <ErrorNote error={holds.error} />
          {holds.data && <Holds page={holds.data} />}
        </Section>
        <Section title="Facemaps per wrapping key">
          {s && (
            <DataTable caption="Facemaps per wrapping key" hideCaption>
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col" class="num">
                    Facemaps
                  </th>
                </tr>
              </thead>
              <tbody>
                {s.facemapsByKey.length === 0 && (
                  <tr>
                    <td colSpan={2}>No facemap is held.</td>
                  </tr>
                )}
                {s.facemapsByKey.map((k) => (
                  <tr key={k.keyId}>
                    <th scope="row" class="mono">
                      {k.keyId}
                    </th>
                    <td class="num">{count(k.facemaps)}</td>
                  </tr>
                ))}
              </tbody>
            </DataTable>
          )}
        </Section>
      </div>
    </>
  );
}

function Figure({ label, value }: { label: string; value: string }) {
  return (
    <div class="figure">
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

function ChainStatus({ status }: { status: AuditStatus }) {
  const v = status.lastVerification;
  return (
    <dl class="facts" aria-label="Audit chain status">
      <dt>Entries</dt>
      <dd>{count(status.head.seq)}</dd>
      <dt>Last signed digest</dt>
      <dd>
        {status.lastDigest
          ? `#${status.lastDigest.number} through entry ${count(status.lastDigest.toSequence)}, ${when(status.lastDigest.createdAt)}`
          : 'none yet'}
      </dd>
      <dt>Last verified</dt>
      <dd>{v ? `${when(v.at)} by ${v.actor}` : 'never'}</dd>
      <dt>Result</dt>
      <dd>
        {!v ? (
          '—'
        ) : v.ok ? (
          <span class="ok">Intact through entry {count(v.checkedThrough)}</span>
        ) : (
          <span class="bad">
            Broken at entry {count(v.brokenAt)} ({v.reason}): {v.message}
          </span>
        )}
      </dd>
    </dl>
  );
}

function History({ months }: { months: FacemapMonth[] }) {
  return (
    <figure>
      <Chart
        labels={months.map((m) => monthLabel(m.month, true))}
        series={[
          {
            label: 'Held',
            values: months.map((m) => m.held),
            color: '#1f4e79',
            kind: 'line',
          },
          {
            label: 'Stored',
            values: months.map((m) => m.stored),
            color: '#2e7d32',
            kind: 'line',
          },
          {
            label: 'Destroyed',
            values: months.map((m) => m.destroyed),
            color: '#b3261e',
            kind: 'line',
          },
        ]}
      />
      <figcaption>
        Facemaps held at the end of each month, stored and destroyed during it (last {months.length}{' '}
        months, UTC).
      </figcaption>
      <details>
        <summary>Figures by month</summary>
        <DataTable caption="Facemaps stored over time">
          <thead>
            <tr>
              <th scope="col">Month</th>
              <th scope="col" class="num">
                Stored
              </th>
              <th scope="col" class="num">
                Destroyed
              </th>
              <th scope="col" class="num">
                Held at month end
              </th>
            </tr>
          </thead>
          <tbody>
            {months.map((m) => (
              <tr key={m.month}>
                <th scope="row">{monthLabel(m.month)}</th>
                <td class="num">{count(m.stored)}</td>
                <td class="num">{count(m.destroyed)}</td>
                <td class="num">{count(m.held)}</td>
              </tr>
            ))}
          </tbody>
        </DataTable>
      </details>
    </figure>
  );
}

function Schedule({ schedule }: { schedule: RetentionSchedule }) {
  const { months } = schedule;
  const total = months.reduce((n, m) => n + m.due, 0);
  return (
    <figure>
      <Chart
        labels={months.map((m) => monthLabel(m.month, true))}
        series={[
          {
            label: 'Deadlines',
            values: months.map((m) => m.due),
            color: '#c77700',
            kind: 'bars',
          },
          // Drawn over the first series: the part of each month's bar under a legal hold.
          {
            label: 'Of which under legal hold',
            values: months.map((m) => m.onHold),
            color: '#6a1b9a',
            kind: 'bars',
          },
        ]}
      />
      <figcaption>
        {count(total)} retention deadlines from now to {when(schedule.to)} (retention{' '}
        {count(schedule.retentionDays)} days after the last interaction, or earlier when the purpose
        is satisfied).
      </figcaption>
      <details>
        <summary>Figures by month</summary>
        <DataTable caption="Retention deadlines by month">
          <thead>
            <tr>
              <th scope="col">Month</th>
              <th scope="col" class="num">
                Deadlines
              </th>
              <th scope="col" class="num">
                Under legal hold
              </th>
            </tr>
          </thead>
          <tbody>
            {months.map((m) => (
              <tr key={m.month}>
                <th scope="row">{monthLabel(m.month)}</th>
                <td class="num">{count(m.due)}</td>
                <td class="num">{count(m.onHold)}</td>
              </tr>
            ))}
          </tbody>
        </DataTable>
      </details>
    </figure>
  );
}

function Holds({ page }: { page: Page<LegalHold> }) {
  return (
    <>
      <DataTable caption="Legal holds in place" hideCaption>
        <thead>
          <tr>
            <th scope="col">User reference</th>
            <th scope="col">Hold</th>
            <th scope="col">Reason</th>
            <th scope="col">Placed</th>
          </tr>
        </thead>
        <tbody>
          {page.items.length === 0 && (
            <tr>
              <td colSpan={4}>No legal hold is in place.</td>
            </tr>
          )}
          {page.items.map((h) => (
            <tr key={h.userReference}>
              <th scope="row">
                <a href={userHref(h.userReference)}>{h.userReference}</a>
              </th>
              <td>{h.reference}</td>
              <td class="wrap">{h.reason}</td>
              <td>
                {when(h.placedAt)} by {h.placedBy}
              </td>
            </tr>
          ))}
        </tbody>
      </DataTable>
      {page.nextCursor && <p class="note">Showing the first {page.items.length} holds.</p>}
    </>
  );
}
