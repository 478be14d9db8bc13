import { useState } from 'preact/hooks';
import { ENROLLMENT_STATES, type InventoryItem, type Page, type Query } from '../api';
import {
  DataTable,
  ErrorNote,
  errorMessage,
  Loading,
  FilterForm,
  Pager,
  useFilters,
  usePager,
  useLoad,
  useSession,
  ViewHeading,
} from '../components';
import { count, day, dayStart, when } from '../format';
import { userHref } from '../router';

interface Filters {
  state: string;
  createdAfter: string;
  createdBefore: string;
  retentionDueBefore: string;
  legalHold: string;
  limit: string;
}

const NO_FILTERS: Filters = {
  state: '',
  createdAfter: '',
  createdBefore: '',
  retentionDueBefore: '',
  legalHold: '',
  limit: '50',
};

/** The API's filter parameters for the form's values (dates: 00:00 UTC that day). */
function filterQuery(f: Filters): Query {
  return {
    state: f.state,
    createdAfter: dayStart(f.createdAfter),
    createdBefore: dayStart(f.createdBefore),
    retentionDueBefore: dayStart(f.retentionDueBefore),
    legalHold: f.legalHold,
  };
}

export function Inventory() {
  const { api } = useSession();
  const filters = useFilters(NO_FILTERS);
  const { draft, applied, set } = filters;
  const key = JSON.stringify(applied);
  const pager = usePager(key);
  const page = useLoad(
    () =>
      api.get<Page<InventoryItem>>('/v1/enrollments', {
        ...filterQuery(applied),
        limit: applied.limit,
        cursor: pager.cursor,
      }),
    `${key} ${pager.cursor ?? ''}`,
  );
  const [exporting, setExporting] = useState<string | null>(null);
  const [exported, setExported] = useState<{ message: string; error?: unknown } | null>(null);

  async function exportAs(format: 'csv' | 'ndjson') {
    setExporting(format);
    setExported(null);
    try {
      // Fetched with the Authorization header, then handed to the browser as a Blob URL:
      // an export link with the token in it would leak into history and server logs.
      const blob = await api.download('/v1/inventory/export', { ...filterQuery(applied), format });
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = `inventory-${new Date().toISOString().slice(0, 10)}.${format}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setExported({ message: `Exported ${link.download} (${count(blob.size)} bytes).` });
    } catch (error) {
      setExported({ message: `The export failed: ${errorMessage(error)}`, error });
    } finally {
      setExporting(null);
    }
  }

  return (
    <>
      <ViewHeading>Inventory</ViewHeading>
      <FilterForm
        label="Inventory filters"
        filters={filters}
        rowChoices={['10', '25', '50', '100', '250']}
      >
        <label>
          State
          <select value={draft.state} onChange={set('state')}>
            <option value="">Any</option>
            {ENROLLMENT_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created on or after
          <input type="date" value={draft.createdAfter} onInput={set('createdAfter')} />
        </label>
        <label>
          Created before
          <input type="date" value={draft.createdBefore} onInput={set('createdBefore')} />
        </label>
        <label>
          Retention due before
          <input type="date" value={draft.retentionDueBefore} onInput={set('retentionDueBefore')} />
        </label>
        <label>
          Legal hold
          <select value={draft.legalHold} onChange={set('legalHold')}>
            <option value="">Any</option>
            <option value="true">Under hold</option>
            <option value="false">No hold</option>
          </select>
        </label>
      </FilterForm>

      <div class="toolbar" role="group" aria-label="Export the filtered inventory">
        <button type="button" disabled={exporting !== null} onClick={() => exportAs('csv')}>
          {exporting === 'csv' ? 'Exporting CSV…' : 'Export CSV'}
        </button>
        <button type="button" disabled={exporting !== null} onClick={() => exportAs('ndjson')}>
          {exporting === 'ndjson' ? 'Exporting NDJSON…' : 'Export NDJSON'}
        </button>
        <span role="status" class={exported?.error ? 'error' : undefined}>
          {exported?.message}
        </span>
      </div>

      <ErrorNote error={page.error} />
      <Loading loading={page.loading} label="the inventory" />
      {page.data && (
        <>
          <DataTable caption={`Enrollments, page ${pager.page}`}>
            <thead>
              <tr>
                <th scope="col">Enrollment</th>
                <th scope="col">User reference</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">Last interaction</th>
                <th scope="col">Retention due</th>
                <th scope="col">Legal hold</th>
                <th scope="col">Key</th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.length === 0 && (
                <tr>
                  <td colSpan={8}>No enrollment matches these filters.</td>
                </tr>
              )}
              {page.data.items.map((e) => (
                <tr key={e.enrollmentReference}>
                  <th scope="row" class="mono">
                    {e.enrollmentReference}
                  </th>
                  <td>
                    {e.userReference ? (
                      <a href={userHref(e.userReference)}>{e.userReference}</a>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td>
                    <span class={`state state-${e.state.toLowerCase()}`}>{e.state}</span>
                    {e.reason && <span class="sub">{e.reason}</span>}
                  </td>
                  <td>{when(e.createdAt)}</td>
                  <td>{day(e.lastInteractionAt)}</td>
                  <td>{day(e.retentionDueAt)}</td>
                  <td>{e.legalHold ? 'Yes' : 'No'}</td>
                  <td class="mono">{e.keyId ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </DataTable>
          <Pager label="Inventory" pager={pager} nextCursor={page.data.nextCursor} />
        </>
      )}
    </>
  );
}
