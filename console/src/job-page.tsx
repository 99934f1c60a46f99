// One job: every field, its input and result laid out per variant, its
// failures, its lease, and its event history (ListJobEvents), kept live by
// WatchJob from the last revision shown, so a reconnection (a server restart)
// neither skips nor repeats an event. Tokens with jobs:write get the two
// cancellation actions, each confirmed first.

import { toJson, toJsonString } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { type Job, type JobEvent, JobInputSchema, JobResultSchema, JobSchema, JobState } from "../../src/gen/jobs/v1/job_pb.js";
import { type Access, describeProblem, type Jobs, type Problem, problemOf } from "./api.js";
import { clusterName, eventTypeName, JsonView, label, MessageFields, orDash, principal, relative, stateName, time, typeName } from "./format.js";
import { keepOpen, LIVE_TEXT, type LiveState } from "./live.js";

interface Props {
  readonly client: Jobs;
  readonly access: Access;
  readonly jobId: string;
  readonly onAuthLost: (problem: Problem) => void;
}

/** States after which WatchJob's stream ends and nothing more can happen. */
const FINAL = new Set([JobState.COMPLETED, JobState.CANCELLED]);

export function JobPage({ client, access, jobId, onAuthLost }: Props) {
  const [job, setJob] = useState<Job | null>(null);
  const [events, setEvents] = useState<JobEvent[]>([]);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [live, setLive] = useState<LiveState>("connecting");

  /** Shows `next` unless the page already shows a later revision of the job. */
  const showJob = (next: Job | undefined) => {
    if (next) setJob((shown) => (shown && shown.revision > next.revision ? shown : next));
  };

  useEffect(() => {
    const stop = new AbortController();
    const { signal } = stop;
    const failed = (p: Problem) => (p.code === "UNAUTHENTICATED" ? onAuthLost(p) : setProblem(p));
    let lastRevision = 0n;
    let lastState = JobState.UNSPECIFIED;
    (async () => {
      try {
        showJob((await client.getJob({ jobId }, { signal })).job);
        const history: JobEvent[] = [];
        let pageToken = "";
        do {
          const page = await client.listJobEvents({ jobId, pageSize: 1000, pageToken }, { signal });
          history.push(...page.events);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        setEvents(history);
        lastRevision = history.at(-1)?.revision ?? 0n;
        lastState = history.at(-1)?.toState ?? JobState.UNSPECIFIED;
      } catch (error) {
        if (!signal.aborted) failed(problemOf(error));
        return;
      }
      await keepOpen({
        signal,
        onState: setLive,
        onFatal: failed,
        open: async (streamSignal) => {
          const messages = client.watchJob({ jobId, afterRevision: lastRevision }, { signal: streamSignal });
          // The stream says nothing until the job changes or a heartbeat is due, so a read beside it tells that
          // the server answers again (after a restart), and brings the lease, which moves without events.
          client.getJob({ jobId }, { signal: streamSignal }).then(
            (read) => {
              showJob(read.job);
              setLive("live");
            },
            () => {},
          );
          for await (const message of messages) {
            if (message.kind.case === "event") {
              const event = message.kind.value;
              if (event.revision <= lastRevision) continue;
              lastRevision = event.revision;
              lastState = event.toState;
              setEvents((shown) => [...shown, event]);
              showJob(event.job);
            } else if (message.kind.case === "heartbeat") {
              // Heartbeats of the executor move the lease without an event: read it again.
              showJob((await client.getJob({ jobId }, { signal: streamSignal })).job);
            }
          }
          // The stream ends after the job finishes; a FAILED job may be run again, so it is followed on.
          return FINAL.has(lastState) ? "done" : "again";
        },
      });
    })();
    return () => stop.abort();
  }, [client, jobId]);

  if (problem && !job) {
    return (
      <>
        <p>
          <a href="#/">← All jobs</a>
        </p>
        <h1>Job {jobId}</h1>
        <p class="problem" role="alert">
          {problem.code === "NOT_FOUND" ? `No job with this id is visible to you (${problem.reason}).` : `Could not load the job: ${describeProblem(problem)}`}
        </p>
      </>
    );
  }

  return (
    <>
      <p>
        <a href="#/">← All jobs</a>
      </p>
      <div class="heading">
        <h1>
          Job <span class="mono">{jobId}</span>
        </h1>
        <p class={`live live-${live}`} role="status">
          {LIVE_TEXT[live]}
        </p>
      </div>
      {problem && (
        <p class="problem" role="alert">
          {describeProblem(problem)}
        </p>
      )}
      {job && (
        <>
          <Summary job={job} />
          <Actions client={client} access={access} job={job} onJob={showJob} onAuthLost={onAuthLost} />
          <Variant title="Input" schema={JobInputSchema} variant={job.input} />
          {job.result?.kind.case !== undefined && <Variant title="Result" schema={JobResultSchema} variant={job.result} />}
          <Failures job={job} />
          <details class="raw">
            <summary>The job as JSON</summary>
            <pre>{toJsonString(JobSchema, job, { prettySpaces: 2 })}</pre>
          </details>
        </>
      )}
      <section aria-labelledby="history-heading">
        <h2 id="history-heading">Event history</h2>
        <ol class="timeline" aria-labelledby="history-heading">
          {events.map((event) => (
            <li key={event.revision.toString()}>
              <span class="revision">#{event.revision.toString()}</span>{" "}
              <strong>{eventTypeName(event.type)}</strong>{" "}
              <span>
                {event.fromState === JobState.UNSPECIFIED ? "" : `${stateName(event.fromState)} → `}
                {stateName(event.toState)}
              </span>{" "}
              <span class="by">by {principal(event.actor)}</span> <time>{time(event.occurredAt)}</time>
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}

/** Seconds tick while the job holds a lease, so "expires in …" stays true. */
function useNow(ticking: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!ticking) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [ticking]);
  return now;
}

function Summary({ job }: { job: Job }) {
  const now = useNow(job.leaseExpiresAt !== undefined);
  const lease = job.leaseExpiresAt;
  const fields: Array<[string, string]> = [
    ["ID", job.id],
    ["Type", typeName(job.type)],
    ["State", stateName(job.state)],
    ["Company", job.companyId.toString()],
    ["Created by", principal(job.createdBy)],
    ["Executor", orDash(job.executorId)],
    ["Attempt", job.attempt.toString()],
    ["Revision", job.revision.toString()],
    ["Cancellation reason", orDash(job.cancellationReason)],
    ["Data plane", orDash(job.dataPlaneId)],
    ["Compute pool", orDash(job.computePoolId)],
    ["Execution cluster", clusterName(job.executionCluster)],
    ["Lease span", job.leaseSeconds ? `${job.leaseSeconds} s` : "—"],
    ["Lease expires", lease ? `${time(lease)} (${relative(lease, now).replace(/ago$/, "ago: expired")})` : "— (no lease held)"],
    ["Created", time(job.createdAt)],
    ["Updated", time(job.updatedAt)],
    ["Started", time(job.startedAt)],
    ["Finished", time(job.finishedAt)],
  ];
  return (
    <section aria-labelledby="summary-heading">
      <h2 id="summary-heading" class="visually-hidden">
        Fields
      </h2>
      <dl class="fields summary">
        {fields.map(([name, value]) => (
          <div key={name} class={name === "State" ? `state-${value}` : undefined}>
            <dt>{name}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

/** A JobInput or JobResult: the variant's name, then its fields. */
function Variant({ title, schema, variant }: { title: string; schema: typeof JobInputSchema | typeof JobResultSchema; variant: { kind: { case?: string; value?: unknown } } | undefined }) {
  const kind = variant?.kind;
  const field = kind?.case === undefined ? undefined : schema.fields.find((f) => f.localName === kind.case);
  const headingId = `${title.toLowerCase()}-heading`;
  return (
    <section aria-labelledby={headingId}>
      <h2 id={headingId}>
        {title}
        {field ? `: ${label(field.name)}` : ""}
      </h2>
      {!field || kind?.value === undefined ? (
        <p>None.</p>
      ) : field.fieldKind === "message" && field.message.typeName !== "google.protobuf.Struct" ? (
        <MessageFields schema={field.message} message={kind.value as object} />
      ) : (
        <JsonView value={kind.value as never} />
      )}
    </section>
  );
}

function Failures({ job }: { job: Job }) {
  return (
    <section aria-labelledby="failures-heading">
      <h2 id="failures-heading">Failures</h2>
      {job.failures.length === 0 ? (
        <p>None.</p>
      ) : (
        <ol class="failures">
          {job.failures.map((failure, i) => (
            <li key={i}>
              <p>
                Attempt {failure.attempt.toString()} by {orDash(failure.executorId)}, {time(failure.failedAt)}:
              </p>
              <p class="message">{failure.message}</p>
              {failure.diagnostic && (
                <dl class="fields">
                  <div>
                    <dt>Diagnostic</dt>
                    <dd>
                      <JsonView value={toJson(ValueSchema, failure.diagnostic)} />
                    </dd>
                  </div>
                </dl>
              )}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

type Call = "RequestJobCancellation" | "CancelJob";

const CONFIRM: Record<Call, { opener: string; question: string; consequence: string; yes: string }> = {
  RequestJobCancellation: {
    opener: "Request cancellation…",
    question: "Request cancellation of this job?",
    consequence: "A PENDING or RUNNING job moves to PENDING_CANCELLATION; its executor is told to stop.",
    yes: "Yes, request cancellation",
  },
  CancelJob: {
    opener: "Cancel job…",
    question: "Cancel this job?",
    consequence: "Finalizes a requested cancellation: PENDING_CANCELLATION moves to CANCELLED, for good.",
    yes: "Yes, cancel the job",
  },
};

function Actions(props: { client: Jobs; access: Access; job: Job; onJob: (job: Job | undefined) => void; onAuthLost: (p: Problem) => void }) {
  const { client, access, job } = props;
  const [asking, setAsking] = useState<Call | null>(null);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);

  const run = async (call: Call) => {
    setAsking(null);
    setBusy(true);
    setOutcome(null);
    try {
      const answer =
        call === "RequestJobCancellation"
          ? await client.requestJobCancellation({ jobId: job.id, reason: reason.trim() })
          : await client.cancelJob({ jobId: job.id });
      const state = answer.job ? stateName(answer.job.state) : "unknown";
      props.onJob(answer.job);
      setOutcome({
        ok: true,
        text: answer.changed ? `${call}: done. The job is now ${state}.` : `${call}: nothing to do (no change). The job is ${state}.`,
      });
      setReason("");
    } catch (error) {
      const p = problemOf(error);
      if (p.code === "UNAUTHENTICATED") props.onAuthLost(p);
      else setOutcome({ ok: false, text: `${call} refused: ${describeProblem(p)}` });
    } finally {
      setBusy(false);
    }
  };

  const disabled = !access.canWrite || busy;
  return (
    <section aria-labelledby="actions-heading">
      <h2 id="actions-heading">Actions</h2>
      <div class="buttons">
        {(Object.keys(CONFIRM) as Call[]).map((call) => (
          <button key={call} type="button" disabled={disabled} aria-describedby={access.canWrite ? undefined : "actions-why"} onClick={() => setAsking(call)}>
            {CONFIRM[call].opener}
          </button>
        ))}
      </div>
      {!access.canWrite && (
        <p id="actions-why" class="why">
          Unavailable with this token: {access.writeRefusal}.
        </p>
      )}
      {outcome && (
        <p class={outcome.ok ? "outcome" : "problem"} role={outcome.ok ? "status" : "alert"}>
          {outcome.text}
        </p>
      )}
      <Confirm call={asking} onClose={() => setAsking(null)} onYes={run}>
        {asking === "RequestJobCancellation" && (
          <div class="field">
            <label for="cancel-reason">Reason (optional)</label>
            <input id="cancel-reason" type="text" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
          </div>
        )}
      </Confirm>
    </section>
  );
}

/** A modal <dialog>, open while a call is asked about: focus moves into it, Escape closes it, and nothing happens until its Yes. */
function Confirm(props: { call: Call | null; onClose: () => void; onYes: (call: Call) => void; children: ComponentChildren }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const shown = useRef<Call | null>(null);
  if (props.call !== null) shown.current = props.call;
  const open = props.call !== null;
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  const call = shown.current;
  const text = call ? CONFIRM[call] : null;
  return (
    <dialog ref={dialog} aria-labelledby="confirm-question" aria-describedby="confirm-consequence" onClose={props.onClose}>
      {text && call && (
        <>
          <h2 id="confirm-question">{text.question}</h2>
          <p id="confirm-consequence">{text.consequence}</p>
          {props.children}
          <div class="buttons">
            <button type="button" class="danger" onClick={() => props.onYes(call)}>
              {text.yes}
            </button>
            <button type="button" onClick={props.onClose}>
              No, go back
            </button>
          </div>
        </>
      )}
    </dialog>
  );
}
