// jobsctl serve: start, print how to reach the server, drain on SIGTERM/SIGINT.

import { startApp } from "../app.js";
import { loadConfig } from "../config.js";
import { startServing } from "../lifecycle.js";
import { createLogger } from "../log.js";
import { EXIT } from "./exit-codes.js";

/** The server until a signal drains it; options from `jobsctl serve` (serve-command.ts). */
export async function runServe(options: { migrate: boolean }): Promise<number> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const serving = await startServing(() => startApp(config, log, options.migrate ? {} : { migrate: false }), config, log);
  if (typeof serving === "number") return serving;
  const { app } = serving;

  // For people, not for log collectors: on stderr, and never as a log line.
  const lines = [`jobs is serving gRPC, gRPC-Web and Connect on ${app.url}`];
  if (config.consoleEnabled) lines.push(`the operators' console: ${app.url}/ (sign in with a token)`);
  if (app.devToken) {
    lines.push(
      `embedded PostgreSQL: ${config.dataDir}/pg`,
      `development token (service "dev", jobs:read + jobs:write), also in ${config.dataDir}/dev-token:`,
      `  ${app.devToken}`,
      `try: npx buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $(cat ${config.dataDir}/dev-token)" ${app.url}/jobs.v1.JobService/ListJobs`,
    );
  }
  process.stderr.write(`${lines.join("\n")}\n`);

  await serving.untilStopped();
  return EXIT.ok;
}
