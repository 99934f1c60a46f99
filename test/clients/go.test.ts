// The Go client (clients/go): `go test ./...` runs the example executor
// (complete; cancellation requested by someone else) and a watch across a
// server restart (SIGTERM) and a crash (SIGKILL), against real `jobsctl
// serve` processes it starts.

import { expect, test } from "@jest/globals";
import { join } from "node:path";
import { ROOT, runTool } from "./run-tool.js";

test("go test ./... in clients/go passes against a live server", async () => {
  const { output } = await runTool(
    "bash",
    [join(ROOT, "scripts", "clients-env.sh"), "go", "test", "-count=1", "-v", "-timeout=240s", "./..."],
    join(ROOT, "clients", "go"),
    270_000,
  );
  for (const name of [
    "TestExecutorClaimsHeartbeatsAndCompletes",
    "TestExecutorAcknowledgesACancellationRequestedBySomeoneElse",
    "TestWatchResumesFromTheLastRevisionAfterAServerRestart",
    "TestWatchResumesAfterTheServerIsKilled",
    "TestWatchEndsAtTheContextDeadline",
  ]) {
    expect(output).toMatch(new RegExp(`--- PASS: ${name} `));
  }
  expect(output).toMatch(/^ok\s+github\.com\/jobs-platform\/jobs\/clients\/go\/examples\/executor\s/m);
  expect(output).toMatch(/^ok\s+github\.com\/jobs-platform\/jobs\/clients\/go\/jobsclient\s/m);
  expect(output).not.toMatch(/--- (FAIL|SKIP)/);
}, 300_000);
