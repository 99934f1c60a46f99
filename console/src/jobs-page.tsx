// The jobs: a page of ListJobs with its filters, the count per state
// (CountJobs), and WatchJobs keeping both current. An event updates its row
// at once; every event, and every (re)connection of the stream, also asks
// for a fresh page and fresh counts, coalesced so that a burst of events
// costs one re-read. After the server restarts, the stream reconnects and its
// `synced` marker re-reads what may have changed meanwhile.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Job, JobEvent } from "../../src/gen/jobs/v1/job_pb.js";
import { JobState, JobType } from "../../src/gen/jobs/v1/job_pb.js";
import type { JobStateCount } from "../../src/gen/jobs/v1/job_service_pb.js";
import { type Access, describeProblem, type Jobs, type Problem, problemOf } from "./api.js";
import { orDash, stateName, time, typeName } from "./format.js";
import { coalesced, keepOpen, LIVE_TEXT, type LiveState } from "./live.js";

export interface Filters {
  readonly states: readonly JobState[];
  readonly types: readonly JobType[];
  readonly executorId: string;
  /** A company id as typed (service tokens only); "" for every company. */
  readonly companyId: string;
}

export const NO_FILTERS: Filters = { states: [], types: [], executorId: "", companyId: "" };

const PAGE_SIZE = 50;
/** At most one re-read of the page and counts per this many ms while events keep coming. */
const REREAD_GAP_MS = 1000;

const STATES = [JobState.PENDING, JobState.RUNNING, JobState.PENDING_CANCELLATION, JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED];
const TYPES = Object.values(JobType).filter((v): v is JobType => typeof v === "number" && v !== JobType.UNSPECIFIED);

interface Props {
  readonly client: Jobs;
  readonly access: Access;
  readonly filters: Filters;
  readonly onFilters: (filters: Filters) => void;
  readonly onAuthLost: (problem: Problem) => void;
}

export function JobsPage({ client, access, filters, onFilters, onAuthLost }: Props) {
  const [rows, setRows] = useState<Job[]>([]);
  /** The page tokens that led to the current page: "" for the first. */
  const [pageTokens, setPageTokens] = useState<string[]>([""]);
  const [nextToken, setNextToken] = useState("");
  const [counts, setCounts] = useState<JobStateCount[] | null>(null);
  const [live, setLive] = useState<LiveState>("connecting");
  const [problem, setProblem] = useState<Problem | null>(null);

  const pageToken = pageTokens[pageTokens.length - 1];
  const filter = useMemo(
    () => ({
      states: [...filters.states],
      types: [...filters.types],
      executorId: filters.executorId,
      companyId: filters.companyId === "" ? 0n : BigInt(filters.companyId),
    }),
    [filters],
  );

  const failed = (error: unknown) => {
    const p = problemOf(error);
    if (p.code === "UNAUTHENTICATED") onAuthLost(p);
    else setProblem(p);
  };

  const reread = useRef<() => Promise<void>>(async () => {});
  reread.current = async () => {
    try {
      // Counted without the states filter: the counts show every state, and which ones the filter keeps.
      const [page, counted] = await Promise.all([
        client.listJobs({ ...filter, pageSize: PAGE_SIZE, pageToken }),
        client.countJobs({ ...filter, states: [] }),
      ]);
      setRows((shown) => newest(page.jobs, shown));
      setNextToken(page.nextPageToken);
      setCounts(counted.counts);
      setProblem(null);
    } catch (error) {
      failed(error);
    }
  };

  useEffect(() => {
    void reread.current();
  }, [client, filter, pageToken]);

  useEffect(() => {
    const stop = new AbortController();
    const rereadSoon = coalesced(() => reread.current(), REREAD_GAP_MS);
    const applied = (event: JobEvent) => {
      const job = event.job;
      if (job) setRows((shown) => shown.map((row) => (row.id === job.id && job.revision > row.revision ? job : row)));
      rereadSoon();
    };
    void keepOpen({
      signal: stop.signal,
      onState: setLive,
      onFatal: failed,
      open: async (signal) => {
        for await (const message of client.watchJobs({ ...filter }, { signal })) {
          if (message.kind.case === "synced") {
            setLive("live");
            rereadSoon();
          } else if (message.kind.case === "event") {
            applied(message.kind.value);
          }
        }
        return "again";
      },
    });
    return () => {
      stop.abort();
      rereadSoon.cancel();
    };
  }, [client, filter]);

  /** The first read has answered (counts and page come together). */
  const loaded = counts !== null;
  const total = counts?.reduce((sum, c) => sum + (filters.states.length === 0 || filters.states.includes(c.state) ? c.count : 0n), 0n);

  return (
    <>
      <div class="heading">
        <h1>Jobs</h1>
        <p class={`live live-${live}`} role="status">
          {LIVE_TEXT[live]}
        </p>
      </div>
      <FilterForm filters={filters} access={access} onApply={(f) => {
        setPageTokens([""]);
        onFilters(f);
      }} />
      <section aria-labelledby="counts-heading">
        <h2 id="counts-heading" class="visually-hidden">
          Jobs per state
        </h2>
        {counts && (
          <ul class="counts">
            {counts.map((c) => (
              <li key={c.state} class={`state-${stateName(c.state)}${filters.states.length && !filters.states.includes(c.state) ? " excluded" : ""}`}>
                <span class="count">{c.count.toString()}</span> <span class="name">{stateName(c.state)}</span>
              </li>
            ))}
            <li class="total">
              <span class="count">{total?.toString()}</span> <span class="name">matching</span>
            </li>
          </ul>
        )}
      </section>
      {problem && (
        <p class="problem" role="alert">
          Could not load the jobs: {describeProblem(problem)}
        </p>
      )}
      <div class="scroll">
        <table class="jobs">
          <caption class="visually-hidden">Jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">ID</th>
              <th scope="col">Type</th>
              <th scope="col">State</th>
              <th scope="col">Company</th>
              <th scope="col">Executor</th>
              <th scope="col">Attempt</th>
              <th scope="col">Created</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((job) => (
              <tr key={job.id}>
                <td data-label="ID">
                  <a class="mono" href={`#/jobs/${job.id}`}>
                    {job.id}
                  </a>
                </td>
                <td data-label="Type">{typeName(job.type)}</td>
                <td data-label="State">
                  <span class={`state state-${stateName(job.state)}`}>{stateName(job.state)}</span>
                </td>
                <td data-label="Company">{job.companyId.toString()}</td>
                <td data-label="Executor">{orDash(job.executorId)}</td>
                <td data-label="Attempt">{job.attempt.toString()}</td>
                <td data-label="Created">{time(job.createdAt)}</td>
                <td data-label="Updated">{time(job.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {loaded && rows.length === 0 && <p class="empty">No jobs match these filters.</p>}
      <nav class="pages" aria-label="Pages">
        <button type="button" disabled={pageTokens.length === 1} onClick={() => setPageTokens((tokens) => tokens.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {pageTokens.length}</span>
        <button type="button" disabled={nextToken === ""} onClick={() => setPageTokens((tokens) => [...tokens, nextToken])}>
          Next page
        </button>
      </nav>
    </>
  );
}

/** A page just read, keeping any row the stream brought newer while the read was on its way. */
function newest(read: Job[], shown: Job[]): Job[] {
  const byId = new Map(shown.map((job) => [job.id, job]));
  return read.map((job) => {
    const seen = byId.get(job.id);
    return seen && seen.revision > job.revision ? seen : job;
  });
}

function FilterForm({ filters, access, onApply }: { filters: Filters; access: Access; onApply: (f: Filters) => void }) {
  const [draft, setDraft] = useState(filters);
  const [invalid, setInvalid] = useState("");
  useEffect(() => setDraft(filters), [filters]);

  const toggle = <T,>(list: readonly T[], item: T, on: boolean) => (on ? [...list, item] : list.filter((x) => x !== item));
  const submit = (event: Event) => {
    event.preventDefault();
    const companyId = draft.companyId.trim();
    if (companyId !== "" && !/^[1-9]\d{0,18}$/.test(companyId)) {
      setInvalid("Company must be a whole number above 0, or empty for every company.");
      return;
    }
    setInvalid("");
    onApply({ ...draft, executorId: draft.executorId.trim(), companyId });
  };

  return (
    <form class="filters" aria-label="Filters" onSubmit={submit}>
      <fieldset>
        <legend>State</legend>
        {STATES.map((state) => (
          <label key={state} class="check">
            <input
              type="checkbox"
              checked={draft.states.includes(state)}
              onChange={(e) => setDraft({ ...draft, states: toggle(draft.states, state, (e.target as HTMLInputElement).checked) })}
            />
            {stateName(state)}
          </label>
        ))}
      </fieldset>
      <div class="field">
        <label for="filter-types">Type</label>
        <select
          id="filter-types"
          multiple
          size={4}
          onChange={(e) => setDraft({ ...draft, types: [...(e.target as HTMLSelectElement).selectedOptions].map((o) => Number(o.value) as JobType) })}
        >
          {TYPES.map((type) => (
            <option key={type} value={type} selected={draft.types.includes(type)}>
              {typeName(type)}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="filter-executor">Executor</label>
        <input id="filter-executor" type="text" value={draft.executorId} onInput={(e) => setDraft({ ...draft, executorId: (e.target as HTMLInputElement).value })} />
      </div>
      {access.companyId === null && (
        <div class="field">
          <label for="filter-company">Company</label>
          <input
            id="filter-company"
            type="text"
            inputMode="numeric"
            value={draft.companyId}
            aria-invalid={invalid !== ""}
            aria-describedby={invalid ? "filter-invalid" : undefined}
            onInput={(e) => setDraft({ ...draft, companyId: (e.target as HTMLInputElement).value })}
          />
        </div>
      )}
      <div class="buttons">
        <button type="submit">Apply filters</button>
        <button type="button" onClick={() => onApply(NO_FILTERS)}>
          Clear filters
        </button>
      </div>
      {invalid && (
        <p id="filter-invalid" class="problem" role="alert">
          {invalid}
        </p>
      )}
    </form>
  );
}
