// A lane: a bounded share of the connection pool. At most `slots` calls run
// at once; the rest wait in arrival order, and one that waits past the limit
// is shed as UNAVAILABLE OVERLOADED; a lost database fails the waiting calls
// with the same error at once.

import { expect, test } from "@jest/globals";
import { Unavailable } from "../../src/domain/errors.js";
import { Lane } from "../../src/store/lane.js";

/** Work that runs until released. */
function held() {
  let release!: (value: string) => void;
  let fail!: (error: unknown) => void;
  const done = new Promise<string>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return { work: () => done, release, fail };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("at most `slots` calls run at once; the others start in arrival order as slots free", async () => {
  const lane = new Lane("reads", 2, 10_000);
  const started: string[] = [];
  const works = ["a", "b", "c", "d"].map((name) => ({ name, ...held() }));
  const results = works.map(({ name, work }) =>
    lane.run(() => {
      started.push(name);
      return work();
    }),
  );
  await tick();
  expect([started, lane.waiting]).toEqual([["a", "b"], 2]);
  works[1].release("b");
  await tick();
  expect(started).toEqual(["a", "b", "c"]);
  works[0].release("a");
  works[2].release("c");
  await tick();
  works[3].release("d");
  expect(await Promise.all(results)).toEqual(["a", "b", "c", "d"]);
  expect([started, lane.waiting]).toEqual([["a", "b", "c", "d"], 0]);
});

test("a call that waits past the limit is shed as UNAVAILABLE OVERLOADED, naming what waited; the running one is unaffected", async () => {
  const lane = new Lane("token lookups", 1, 50);
  const running = held();
  const first = lane.run(running.work);
  const shed = lane.run(async () => "never");
  await expect(shed).rejects.toMatchObject({ kind: "unavailable", reason: "OVERLOADED", message: expect.stringContaining("token lookups") });
  expect(lane.waiting).toBe(0);
  running.release("done");
  expect(await first).toBe("done");
  // The slot is free again.
  expect(await lane.run(async () => "next")).toBe("next");
});

test("when a call finds the database unreachable, the calls waiting fail with the same error at once", async () => {
  const lane = new Lane("reads", 1, 60_000);
  const running = held();
  const first = lane.run(running.work);
  const waiting = [lane.run(async () => "a"), lane.run(async () => "b")];
  const unreachable = new Unavailable("DATABASE_UNAVAILABLE", "the job database is unreachable right now");
  running.fail(unreachable);
  await expect(first).rejects.toBe(unreachable);
  for (const call of waiting) await expect(call).rejects.toBe(unreachable);
  expect(await lane.run(async () => "after")).toBe("after");
});
