// jobsctl serve: start, print how to reach the server, drain on SIGTERM/SIGINT.

import type { Command } from "commander";
import { startApp } from "../app.js";
import { loadConfig } from "../config.js";
import { startServing } from "../lifecycle.js";
import { createLogger } from "../log.js";
import { EXIT } from "./exit-codes.js";
import { examples } from "./help.js";

export function registerServe(program: Command): void {
  examples(
    program
      .command("serve")
      .summary("run the server")
      .description(
        "Run the server: gRPC, gRPC-Web and Connect on HOST:PORT, on DATABASE_URL or, without it, an embedded PostgreSQL in JOBS_DATA_DIR. Configured by the environment (README: Configuration); drains and exits 0 on SIGTERM or Ctrl-C.",
      )
      .option("--no-migrate", "do not apply pending migrations at start (as MIGRATE_ON_START=false)")
      .helpGroup("Server:"),
    ["jobsctl serve", "PORT=50052 DATABASE_URL=postgres://jobs@db/jobs jobsctl serve --no-migrate"],
  ).action(async (opts: { migrate: boolean }) => {
    process.exitCode = await runServe(opts);
  });
}

export async function runServe(options: { migrate: boolean }): Promise<number> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const serving = await startServing(() => startApp(config, log, options.migrate ? {} : { migrate: false }), config, log);
  if (typeof serving === "number") return serving;
  const { app } = serving;

  // For people, not for log collectors: on stderr, and never as a log line.
  const lines = [`jobs is serving gRPC, gRPC-Web and Connect on ${app.url}`];
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
