// The page: sign-in, the bar at the top, and the two views, chosen by the
// URL's hash (#/ the jobs, #/jobs/<id> one job), so the server only ever
// serves static files. The token is kept in sessionStorage, for this tab
// only, and is never put in a URL, a cookie or localStorage.

import { useCallback, useEffect, useState } from "preact/hooks";
import { type Access, jobsClient, type Jobs, type Problem, probeAccess, problemOf } from "./api.js";
import { JobPage } from "./job-page.js";
import { type Filters, JobsPage, NO_FILTERS } from "./jobs-page.js";

const TOKEN_KEY = "jobs-console-token";

interface Session {
  readonly client: Jobs;
  readonly access: Access;
}

type Route = { readonly page: "jobs" } | { readonly page: "job"; readonly jobId: string };

function routeOf(hash: string): Route {
  const job = /^#\/jobs\/([0-9a-fA-F-]{36})$/.exec(hash);
  return job ? { page: "job", jobId: job[1].toLowerCase() } : { page: "jobs" };
}

function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return routeOf(hash);
}

/** Why a token was turned away at sign-in, in words. */
function refusal(problem: Problem): string {
  if (problem.code === "UNAUTHENTICATED") return `That token was not accepted (${problem.reason}): ${problem.message}.`;
  if (problem.code === "PERMISSION_DENIED") return `That token cannot read jobs (${problem.reason}): ${problem.message}.`;
  return `Could not reach the jobs service (${problem.code}${problem.reason ? ` ${problem.reason}` : ""}): ${problem.message}. Try again.`;
}

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(() => sessionStorage.getItem(TOKEN_KEY) !== null);
  const [notice, setNotice] = useState("");
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const route = useRoute();

  const signIn = useCallback(async (token: string) => {
    setChecking(true);
    setNotice("");
    const client = jobsClient(token);
    try {
      const access = await probeAccess(client);
      sessionStorage.setItem(TOKEN_KEY, token);
      setSession({ client, access });
    } catch (error) {
      const problem = problemOf(error);
      // A token the server turned away is forgotten; one it could not check (server down) is kept for the next try.
      if (problem.code === "UNAUTHENTICATED" || problem.code === "PERMISSION_DENIED") sessionStorage.removeItem(TOKEN_KEY);
      setNotice(refusal(problem));
    } finally {
      setChecking(false);
    }
  }, []);

  const signOut = useCallback((why = "") => {
    sessionStorage.removeItem(TOKEN_KEY);
    setSession(null);
    setFilters(NO_FILTERS);
    setNotice(why);
  }, []);

  const authLost = useCallback(
    (problem: Problem) => signOut(`Signed out: the server no longer accepts this token (${problem.reason}): ${problem.message}.`),
    [signOut],
  );

  useEffect(() => {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved !== null) void signIn(saved);
  }, [signIn]);

  if (session === null) {
    return <SignIn checking={checking} notice={notice} onToken={signIn} retry={sessionStorage.getItem(TOKEN_KEY)} />;
  }
  const { client, access } = session;
  return (
    <>
      <header class="bar">
        <a class="brand" href="#/">
          jobs console
        </a>
        <span class="who">
          {access.companyId === null ? "Service token: every company" : `Company ${access.companyId}`} ·{" "}
          {access.canWrite ? "read and write" : "read only"}
        </span>
        <button type="button" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main>
        {route.page === "job" ? (
          <JobPage key={route.jobId} client={client} access={access} jobId={route.jobId} onAuthLost={authLost} />
        ) : (
          <JobsPage client={client} access={access} filters={filters} onFilters={setFilters} onAuthLost={authLost} />
        )}
      </main>
    </>
  );
}

function SignIn(props: { checking: boolean; notice: string; retry: string | null; onToken: (token: string) => void }) {
  const [token, setToken] = useState("");
  const submit = (event: Event) => {
    event.preventDefault();
    const pasted = token.trim();
    if (pasted === "") return;
    setToken("");
    props.onToken(pasted);
  };
  return (
    <main class="sign-in">
      <h1>jobs console</h1>
      <p>Paste a token made with <code>jobsctl tokens create</code>. It is kept in this browser tab only, and forgotten when you sign out or close the tab.</p>
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          disabled={props.checking}
        />
        <button type="submit" disabled={props.checking}>
          {props.checking ? "Checking…" : "Sign in"}
        </button>
      </form>
      {props.notice && (
        <p class="problem" role="alert">
          {props.notice}
        </p>
      )}
      {props.notice && props.retry !== null && !props.checking && (
        <button type="button" onClick={() => props.onToken(props.retry as string)}>
          Try again
        </button>
      )}
    </main>
  );
}
