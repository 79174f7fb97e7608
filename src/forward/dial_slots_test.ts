import assert from "node:assert/strict";
import { DialSlots } from "./dial_slots.ts";

Deno.test("DialSlots runs at most the limit at once and hands slots on in arrival order", async () => {
  const slots = new DialSlots(2);
  const signal = new AbortController().signal;
  const order: number[] = [];
  const first = await slots.take(signal);
  const second = await slots.take(signal);
  const waiting = [3, 4, 5].map((n) => slots.take(signal).then((release) => (order.push(n), release)));
  await Promise.resolve();
  assert.deepEqual(order, [], "no third slot while two are taken");
  first();
  const third = await waiting[0];
  assert.deepEqual(order, [3]);
  first(); // releasing twice gives back nothing more
  await Promise.resolve();
  assert.deepEqual(order, [3]);
  second();
  third();
  const rest = await Promise.all(waiting.slice(1));
  assert.deepEqual(order, [3, 4, 5]);
  for (const release of rest) release();
  // all free again: two can be taken at once
  const a = await slots.take(signal);
  const b = await slots.take(signal);
  a();
  b();
});

Deno.test("DialSlots drops a waiter whose signal aborts and keeps the others in line", async () => {
  const slots = new DialSlots(1);
  const held = await slots.take(new AbortController().signal);
  const abort = new AbortController();
  const gone = slots.take(abort.signal);
  const next = slots.take(new AbortController().signal);
  abort.abort(new Error("connection closed"));
  await assert.rejects(gone, /connection closed/);
  held();
  const release = await next;
  release();
});
