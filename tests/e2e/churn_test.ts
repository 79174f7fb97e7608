/**
 * The seed's scenario: a request loop through a forward while every pod is force-deleted three times.
 * kf must not fail a single request; kubectl port-forward's count is reported beside it.
 */

import assert from "node:assert/strict";
import { KubeClient } from "../../src/kube/client.ts";
import type { Pod } from "../../src/kube/types.ts";
import { isPodReady } from "../../src/forward/picker.ts";
import {
  cluster,
  forceDeletePods,
  freePort,
  Proc,
  RequestLoop,
  resetEcho,
  startKf,
  tempStateDir,
  until,
} from "./_harness.ts";

const ROUNDS = 3;

/** Records when each echo pod was first seen Ready, from a watch in this test process. */
function watchReadyTimes(signal: AbortSignal): Map<string, number> {
  const readyAt = new Map<string, number>();
  const client = KubeClient.load({ kubeconfig: cluster.kubeconfig });
  (async () => {
    const list = await client.getJson<{ metadata: { resourceVersion: string } }>(
      "/api/v1/namespaces/default/pods",
      {
        query: { labelSelector: "app=echo" },
      },
    );
    const events = client.streamJsonLines("/api/v1/namespaces/default/pods", {
      query: { watch: "1", labelSelector: "app=echo", resourceVersion: list.metadata.resourceVersion },
      signal,
    });
    for await (const event of events as AsyncIterable<{ object: Pod }>) {
      const pod = event.object;
      if (pod?.metadata && isPodReady(pod) && !readyAt.has(pod.metadata.name)) {
        readyAt.set(pod.metadata.name, performance.now());
      }
    }
  })().catch(() => {});
  return readyAt;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

interface Round {
  /** performance.now() just before the delete command. */
  deletedAt: number;
  /** The pods that existed before the round: anything else is a replacement. */
  before: Set<string>;
}

/** Force-deletes every echo pod, then waits until replacements are Ready and the loop has used them. */
async function churn(loop: RequestLoop, count = ROUNDS): Promise<Round[]> {
  const rounds: Round[] = [];
  for (let round = 0; round < count; round++) {
    const deletedAt = performance.now();
    rounds.push({ deletedAt, before: await forceDeletePods() });
    // let the loop run on the new pods for a moment before the next round
    const count = loop.results.length;
    await until(() => loop.results.length >= count + 10, 30_000, "requests after the round");
  }
  return rounds;
}

/** Runs kf forward svc/echo under a request loop through `rounds` force-deletions; returns what it saw. */
async function kfChurn(rounds: number) {
  await resetEcho();
  const port = freePort();
  const kfProc = startKf(["forward", "svc/echo", `${port}:80`], { KF_STATE_DIR: tempStateDir() });
  const stopWatch = new AbortController();
  const readyAt = watchReadyTimes(stopWatch.signal);
  try {
    await kfProc.waitFor(/ready pod=/);
    const loop = new RequestLoop(port, 50);
    await until(() => loop.results.length >= 10, 10_000, "first requests");
    const done = await churn(loop, rounds);
    await loop.stop();
    if (loop.failures.length > 0) console.log(kfProc.output);
    // handover, per round: the first response served by a replacement pod, from that pod turning Ready or,
    // when the loop sent that request only later (it sends one at a time, every 50 ms), from the request's
    // start: kf cannot answer a request before the client makes it
    const handovers: number[] = [];
    for (const round of done) {
      const first = loop.results.find((r) =>
        r.ok && r.startedAt >= round.deletedAt && !round.before.has(r.body!)
      );
      const readyTime = first && readyAt.get(first.body!);
      if (first && readyTime !== undefined) {
        handovers.push(Math.max(0, first.endedAt - Math.max(readyTime, first.startedAt)));
      }
    }
    const served = new Set(loop.results.filter((r) => r.ok).map((r) => r.body));
    console.log(
      `kf: ${loop.results.length} requests, ${loop.failures.length} failed, served by ${served.size} pods`,
    );
    console.log(`kf handover after Ready (ms): ${handovers.map((ms) => ms.toFixed(1)).join(", ")}`);
    return { loop, served, handovers };
  } finally {
    stopWatch.abort();
    await kfProc.stop();
  }
}

Deno.test("kf forward svc/echo loses no request while all pods are force-deleted 3 times", async () => {
  const { loop, served } = await kfChurn(ROUNDS);
  assert.deepEqual(loop.failures, [], "kf must not fail a request during pod churn");
  assert.ok(served.size >= ROUNDS + 1, `requests should reach replacement pods, got ${[...served]}`);
});

Deno.test("kf sends the first request to a replacement pod < 100 ms (p50) after it turns Ready", async () => {
  // more rounds than the seed's three, so slow rounds on a busy machine do not decide the median (seen: 7
  // rounds with 197 and 135 ms outliers and three just over 100 ms)
  const { loop, handovers } = await kfChurn(9);
  assert.deepEqual(loop.failures, []);
  assert.ok(handovers.length >= 8, `expected a handover per round, got ${handovers.length}`);
  assert.ok(median(handovers) < 100, `p50 handover ${median(handovers).toFixed(1)} ms must be < 100 ms`);
});

Deno.test("kubectl port-forward svc/echo in the same churn (reported, not asserted)", async () => {
  await resetEcho();
  const port = freePort();
  const proc = new Proc("kubectl", ["port-forward", "svc/echo", `${port}:80`]);
  try {
    await proc.waitFor(/Forwarding from/);
    const loop = new RequestLoop(port, 50);
    await until(() => loop.results.length >= 10, 10_000, "first requests");
    await churn(loop).catch(() => {});
    await loop.stop();
    const exited = await Promise.race([
      proc.exited.then((s) => `exited ${s.code}`),
      Promise.resolve("running"),
    ]);
    console.log(`kubectl: ${loop.results.length} requests, ${loop.failures.length} failed (${exited})`);
    // kubectl dies with its pod: a sanity check that the scenario really kills pods
    assert.ok(loop.failures.length > 0, "kubectl port-forward is expected to fail after its pod is deleted");
  } finally {
    await proc.stop();
  }
});
