// `jobsctl serve` as a command. The server's modules load only when it runs,
// so client commands start fast.

import type { Command } from "commander";
import { examples } from "./help.js";

export function registerServe(program: Command): void {
  examples(
    program
      .command("serve")
      .summary("run the server")
      .description(
        "Run the server: gRPC, gRPC-Web and Connect on HOST:PORT, on DATABASE_URL or, without it, an embedded PostgreSQL in JOBS_DATA_DIR. Configured by the environment (docs/configuration.md); drains and exits 0 on SIGTERM or Ctrl-C. Health (grpc.health.v1.Health, no token) answers for the service names \"\" (the server) and \"jobs.v1.JobService\".",
      )
      .option("--no-migrate", "do not apply pending migrations at start (as MIGRATE_ON_START=false)")
      .helpGroup("Server:"),
    ["jobsctl serve", "PORT=50052 DATABASE_URL=postgres://jobs@db/jobs jobsctl serve --no-migrate"],
  ).action(async (opts: { migrate: boolean }) => {
    const { runServe } = await import("./serve.js");
    process.exitCode = await runServe(opts);
  });
}
