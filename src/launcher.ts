// The process that launched this one and passes signals on to it: npm (npm
// start, npm run, npx) or bin/jobsctl.js re-running itself under Node 24.
// When that launcher is gone without passing a signal on (npx's shell dies
// of npm's SIGTERM, a launcher killed with SIGKILL), nobody else will: the
// process must notice by itself, or it runs on with no one to stop it.

/**
 * The pid of this process's launcher, or null when it was started directly
 * (a shell, systemd, a container's init), where the parent may go away on
 * purpose (`nohup jobsctl serve &`).
 */
export function launcherPid(): number | null {
  const parent = process.ppid;
  if (parent <= 1) return null;
  const launchedBy = process.env.JOBSCTL_LAUNCHER_PID;
  if (launchedBy !== undefined) return launchedBy === String(parent) ? parent : null;
  // npm sets this for every script it runs, npx's commands included.
  return process.env.npm_lifecycle_event ? parent : null;
}

const CHECK_MS = 500;

/** Calls `gone` once this process has been re-parented away from `launcher`; returns a function that stops watching. */
export function whenLauncherGone(launcher: number, gone: () => void): () => void {
  const timer = setInterval(() => {
    if (process.ppid === launcher) return;
    clearInterval(timer);
    gone();
  }, CHECK_MS).unref();
  return () => clearInterval(timer);
}
