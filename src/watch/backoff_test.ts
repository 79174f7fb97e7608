import assert from "node:assert/strict";
import { FakeClock } from "./_testing.ts";
import { Backoff, BACKOFF_MAX_MS, BACKOFF_RESET_AFTER_MS } from "./backoff.ts";

/** A random source that always answers just below 1, so delays sit at the top of their range. */
const top = () => 0.999999;

Deno.test("Backoff doubles its ceiling from 800 ms on each consecutive failure", () => {
  const backoff = new Backoff({ random: top, clock: new FakeClock() });
  const delays = Array.from({ length: 6 }, () => backoff.next());
  assert.deepEqual(delays, [799, 1599, 3199, 6399, 12799, 25599]);
});

Deno.test("Backoff never waits longer than 30 s however long failures go on", () => {
  const backoff = new Backoff({ random: top, clock: new FakeClock() });
  const delays = Array.from({ length: 50 }, () => backoff.next());
  assert.equal(Math.max(...delays), BACKOFF_MAX_MS - 1);
  assert.deepEqual(delays.slice(-3), [29999, 29999, 29999]);
  assert.equal(backoff.ceilingMs, BACKOFF_MAX_MS);
});

Deno.test("Backoff jitters fully: each delay lies in [0, ceiling)", () => {
  for (const [random, expected] of [[0, 0], [0.25, 200], [0.5, 400], [top(), 799]] as const) {
    assert.equal(new Backoff({ random: () => random, clock: new FakeClock() }).next(), expected);
  }
  const backoff = new Backoff({ clock: new FakeClock() });
  for (let attempt = 0; attempt < 20; attempt++) {
    const ceiling = backoff.ceilingMs;
    const delay = backoff.next();
    assert.ok(delay >= 0 && delay < ceiling, `${delay} in [0, ${ceiling})`);
  }
});

Deno.test("Backoff starts small again after reset()", () => {
  const backoff = new Backoff({ random: top, clock: new FakeClock() });
  backoff.next();
  backoff.next();
  backoff.next();
  backoff.reset();
  assert.equal(backoff.next(), 799);
});

Deno.test("Backoff starts small again after two minutes without failures", () => {
  const clock = new FakeClock();
  const backoff = new Backoff({ random: top, clock });
  backoff.next();
  backoff.next();
  clock.advance(BACKOFF_RESET_AFTER_MS - 1);
  assert.equal(backoff.next(), 3199, "a failure within two minutes keeps growing");
  clock.advance(BACKOFF_RESET_AFTER_MS);
  assert.equal(backoff.next(), 799);
});
