import assert from "node:assert/strict";
import { FakeClock } from "../watch/_testing.ts";
import { ClusterHealth, type ClusterHealthState, describeProbeFailure, type HealthProbe } from "./health.ts";
import { ApiError, ApiUnreachableError } from "./errors.ts";

const SERVER = "https://127.0.0.1:6443";

/** A probe whose answers the test scripts; `calls` counts probes sent. */
class ScriptedProbe {
  calls = 0;
  /** What the next probes do: "ok", an Error to throw, or "hang" until aborted. */
  answer: "ok" | "hang" | Error = "ok";
  readonly probe: HealthProbe = (signal) => {
    this.calls++;
    const answer = this.answer;
    if (answer === "ok") return Promise.resolve();
    if (answer instanceof Error) return Promise.reject(answer);
    return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
  };
}

function setup() {
  const clock = new FakeClock();
  const probe = new ScriptedProbe();
  const health = new ClusterHealth({
    probe: probe.probe,
    clock,
    server: SERVER,
    intervalMs: 1000,
    timeoutMs: 2500,
  });
  const states: ClusterHealthState["kind"][] = [];
  health.subscribe(() => states.push(health.state.kind));
  return { clock, probe, health, states };
}

/** The state's kind, read fresh (assertions would otherwise narrow the getter's type for good). */
const kind = (health: ClusterHealth): string => health.state.kind;

/** Lets the fake clock run its due timers and the promise chains settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

Deno.test("ClusterHealth sends nothing while no trouble is suspected", async () => {
  const { probe, health } = setup();
  await settle();
  assert.equal(probe.calls, 0);
  assert.equal(kind(health), "healthy");
  health.close();
});

Deno.test("ClusterHealth clears a suspicion with one probe when the API server answers", async () => {
  const { probe, health, states } = setup();
  health.suspect("a dial failed");
  assert.equal(kind(health), "suspect");
  assert.equal(health.problem, undefined, "a suspicion alone is not shown");
  await settle();
  assert.equal(probe.calls, 1);
  assert.deepEqual(states, ["suspect", "healthy"]);
  health.close();
});

Deno.test("ClusterHealth reports a refused API server at the first probe and keeps probing", async () => {
  const { probe, health, clock } = setup();
  probe.answer = new ApiUnreachableError(SERVER, "ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:6443");
  health.suspect("a dial failed");
  await settle();
  assert.equal(kind(health), "unreachable");
  assert.match(health.problem!, /Cannot reach the API server at .*ECONNREFUSED/);
  const since = (health.state as { since: number }).since;
  for (let i = 0; i < 5; i++) await settle();
  assert.ok(probe.calls >= 3, `probes: ${probe.calls}`);
  // probes are a second apart, not a hot loop
  assert.ok(clock.now() >= (probe.calls - 1) * 1000, `now ${clock.now()} after ${probe.calls} probes`);
  assert.equal((health.state as { since: number }).since, since, "since is when it started");
  probe.answer = "ok";
  for (let i = 0; i < 3; i++) await settle();
  assert.equal(kind(health), "healthy");
  const calls = probe.calls;
  for (let i = 0; i < 3; i++) await settle();
  assert.equal(probe.calls, calls, "probing stops once healthy");
  health.close();
});

Deno.test("ClusterHealth calls a silent API server unreachable when the probe times out", async () => {
  const { probe, health, clock } = setup();
  probe.answer = "hang";
  health.suspect("a dial is slow");
  await settle();
  assert.equal(kind(health), "unreachable");
  assert.equal((health.state as { since: number }).since, 2500, "unreachable once the probe timed out");
  assert.ok(clock.now() >= 2500);
  assert.match(health.problem!, /no answer to a health check within 2500 ms/);
  health.close();
});

Deno.test("ClusterHealth is healthy as soon as a dial succeeds, whatever a probe in flight says", async () => {
  const { probe, health } = setup();
  probe.answer = new ApiUnreachableError(SERVER, "ECONNREFUSED", "refused");
  health.suspect("a dial failed");
  await settle();
  assert.equal(kind(health), "unreachable");
  probe.answer = "hang"; // the next probe will time out and fail...
  await settle();
  health.succeeded(); // ...but a dial got through meanwhile
  assert.equal(kind(health), "healthy");
  for (let i = 0; i < 4; i++) await settle();
  assert.equal(kind(health), "healthy", "the stale probe result must not undo the success");
  health.close();
});

Deno.test("ClusterHealth runs one probe loop however many forwards suspect trouble", async () => {
  const { probe, health, clock } = setup();
  probe.answer = "hang";
  for (let i = 0; i < 10; i++) health.suspect(`forward ${i}`);
  assert.equal(probe.calls, 1);
  await settle();
  // one probe per timeout + interval, not ten
  assert.ok(probe.calls <= Math.floor(clock.now() / 3500) + 1, `${probe.calls} probes by ${clock.now()} ms`);
  health.close();
});

Deno.test("describeProbeFailure() names failing readyz checks and accepts answers that prove the server is up", () => {
  const notReady = new ApiError(500, "[+]ping ok\n[-]etcd failed: reason withheld\n[-]informer-sync failed");
  assert.equal(
    describeProbeFailure(notReady, SERVER),
    `The API server at ${SERVER} is not ready: etcd, informer-sync failing`,
  );
  assert.equal(
    describeProbeFailure(new ApiError(503, "unavailable"), SERVER),
    `The API server at ${SERVER} is not ready: HTTP 503`,
  );
  assert.equal(describeProbeFailure(new ApiError(403, "forbidden"), SERVER), undefined);
  assert.equal(describeProbeFailure(new ApiError(401, "unauthorized"), SERVER), undefined);
});
