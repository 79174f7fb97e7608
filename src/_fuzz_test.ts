import assert from "node:assert/strict";
import { hash32, mutateBytes, mutateText, Prng, runFuzz } from "./_fuzz.ts";

const FAULTY = new URL("./testdata/fuzz_targets.ts", import.meta.url);

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail("expected the fuzz run to fail");
}

Deno.test("Prng gives the same sequence for the same seed and a different one for another", () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const c = new Prng(43);
  const first = Array.from({ length: 8 }, () => a.next());
  assert.deepEqual(Array.from({ length: 8 }, () => b.next()), first);
  assert.notDeepEqual(Array.from({ length: 8 }, () => c.next()), first);
  const rng = new Prng(1);
  for (let i = 0; i < 1000; i++) {
    const n = rng.int(10);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 10);
  }
  assert.equal(hash32("kf"), hash32("kf"));
  assert.notEqual(Prng.forIteration(1, 2).next(), Prng.forIteration(1, 3).next());
});

Deno.test("mutators are deterministic per seed and leave their input alone", () => {
  const bytes = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const outA = Array.from({ length: 50 }, (_, i) => mutateBytes(Prng.forIteration(9, i), bytes));
  const outB = Array.from({ length: 50 }, (_, i) => mutateBytes(Prng.forIteration(9, i), bytes));
  assert.deepEqual(outA, outB);
  assert.deepEqual(bytes, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
  assert.ok(outA.some((out) => out.length !== bytes.length), "some edits change the length");
  const text = "forwards:\n  - {target: svc/a, ports: [80]}\n";
  const texts = Array.from({ length: 50 }, (_, i) => mutateText(Prng.forIteration(9, i), text, ["name:"]));
  assert.deepEqual(
    texts,
    Array.from({ length: 50 }, (_, i) => mutateText(Prng.forIteration(9, i), text, ["name:"])),
  );
  assert.ok(new Set(texts).size > 40, "edits differ between iterations");
});

Deno.test("runFuzz() counts typed errors as rejections and finishes every iteration", async () => {
  const report = await runFuzz(FAULTY, "typedOnly", { seed: 1, iterations: 100, timeoutMs: 20_000 });
  assert.deepEqual({ iterations: report.iterations, rejected: report.rejected }, {
    iterations: 100,
    rejected: 50,
  });
});

Deno.test("runFuzz() fails on an untyped error, naming the seed, iteration and input", async () => {
  const error = await rejection(
    runFuzz(FAULTY, "untypedAt7", { seed: 5, iterations: 100, timeoutMs: 20_000 }),
  );
  assert.match(
    error.message,
    /iteration 7 \(seed 5\) failed: TypeError: cannot read properties of undefined/,
  );
  assert.match(error.message, /input: input-7/);
  assert.match(error.message, /KF_FUZZ_SEED=5 KF_FUZZ_ONLY=7/);
});

Deno.test("runFuzz() stops a target that hangs and names the iteration", async () => {
  const started = performance.now();
  const error = await rejection(runFuzz(FAULTY, "hangsAt3", { seed: 5, iterations: 100, timeoutMs: 5_000 }));
  assert.match(error.message, /no answer within 5000 ms \(seed 5\); stuck in iteration 3:/);
  assert.ok(performance.now() - started < 15_000, "the deadline ended the run");
});

Deno.test("runFuzz() replays one iteration with the same input as in the full run", async () => {
  // find a failing iteration in a full run, then replay only it
  const full = await rejection(
    runFuzz(FAULTY, "failsOnValue", { seed: 77, iterations: 1_000_000, timeoutMs: 60_000 }),
  );
  const [, iteration, value] = full.message.match(
    /iteration (\d+) \(seed 77\) failed: RangeError: value (\d+)/,
  )!;
  const replay = await rejection(
    runFuzz(FAULTY, "failsOnValue", { seed: 77, iterations: 1, only: Number(iteration), timeoutMs: 20_000 }),
  );
  assert.match(
    replay.message,
    new RegExp(`iteration ${iteration} \\(seed 77\\) failed: RangeError: value ${value}`),
  );
});
