// The per-job queue in front of the row lock: one call per job at a time in
// this process, others free to run.

import { expect, test } from "@jest/globals";
import { KeyedQueue } from "../../src/store/keyed-queue.js";

const tick = () => new Promise((r) => setTimeout(r, 5));

test("work for one key runs one at a time, in arrival order", async () => {
  const queue = new KeyedQueue();
  const log: string[] = [];
  let running = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      queue.run("job", async () => {
        running++;
        most = Math.max(most, running);
        log.push(`start ${i}`);
        await tick();
        log.push(`end ${i}`);
        running--;
      }),
    ),
  );
  expect(most).toBe(1);
  expect(log).toEqual(Array.from({ length: 10 }, (_, i) => [`start ${i}`, `end ${i}`]).flat());
});

test("different keys run at the same time", async () => {
  const queue = new KeyedQueue();
  let running = 0;
  let most = 0;
  await Promise.all(
    ["a", "b", "c"].map((key) =>
      queue.run(key, async () => {
        running++;
        most = Math.max(most, running);
        await tick();
        running--;
      }),
    ),
  );
  expect(most).toBe(3);
});

test("a failure is returned to its caller and does not stop the next", async () => {
  const queue = new KeyedQueue();
  const failed = queue.run("job", async () => {
    throw new Error("boom");
  });
  const next = queue.run("job", async () => "ok");
  await expect(failed).rejects.toThrow("boom");
  await expect(next).resolves.toBe("ok");
});

test("a failure the caller marks as shared fails the work queued behind it at that moment, without running it", async () => {
  const queue = new KeyedQueue();
  const shared = new Error("no connection");
  const ran: number[] = [];
  const first = queue.run("job", async () => {
    await tick();
    throw shared;
  }, (error) => error === shared);
  const queued = [1, 2, 3].map((i) => queue.run("job", async () => void ran.push(i), (error) => error === shared));
  await expect(first).rejects.toBe(shared);
  for (const call of queued) await expect(call).rejects.toBe(shared);
  expect(ran).toEqual([]);
  // Work that arrives afterwards runs.
  await expect(queue.run("job", async () => "ok")).resolves.toBe("ok");
});

test("keys are forgotten once their work is done", async () => {
  const queue = new KeyedQueue();
  await Promise.all([queue.run("a", tick), queue.run("b", tick)]);
  await tick();
  expect(queue.size).toBe(0);
});
