import assert from "node:assert/strict";
import { DurationError, parseDuration } from "./duration.ts";

Deno.test("parseDuration() reads units", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("1.5s"), 1500);
});

Deno.test("parseDuration() sums compound durations like Go", () => {
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1h2m3s4ms"), 3_723_004);
});

Deno.test("parseDuration() reads plain numbers as seconds", () => {
  assert.equal(parseDuration(30), 30_000);
  assert.equal(parseDuration("30"), 30_000);
  assert.equal(parseDuration(0.25), 250);
  assert.equal(parseDuration(0), 0);
});

Deno.test("parseDuration() rejects garbage, negatives and overlong durations", () => {
  for (const text of ["", "s", "30x", "-1s", "1 m", "m5", "30s ms", -1, NaN, Infinity, "25d", "600h"]) {
    assert.throws(() => parseDuration(text), DurationError, String(text));
  }
});
