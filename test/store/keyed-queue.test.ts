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

test("keys are forgotten once their work is done", async () => {
  const queue = new KeyedQueue();
  await Promise.all([queue.run("a", tick), queue.run("b", tick)]);
  await tick();
  expect(queue.size).toBe(0);
});
