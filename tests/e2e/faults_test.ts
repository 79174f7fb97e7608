/**
 * Control-plane faults on the real cluster, with fresh HTTP requests at 10/s (each on a new connection, 30 s
 * client timeout) through `kf forward svc/echo` and, side by side, `kubectl port-forward svc/echo`:
 * kube-apiserver and etcd killed and restarted 10 s later (by their pid files), the path to the API server
 * silently stalled for 20 s (a relay in this test stops forwarding without closing), kf itself stopped for
 * 60 s (SIGSTOP, as in a laptop sleep), and 20 rounds of pod churn in a row. kf must not fail a request and
 * must say `degraded` (with the reason) while the API server is gone; kubectl's numbers are printed.
 */

import assert from "node:assert/strict";
import {
  cluster,
  forceDeletePods,
  freePort,
  httpGet,
  type HttpResult,
  kf,
  kubectl,
  Proc,
  readyPods,
  REPO,
  RequestLoop,
  resetEcho,
  sleep,
  startKf,
  tempStateDir,
  until,
} from "./_harness.ts";
import { apiServerReady, component, kill, start } from "./_components.ts";
import { join } from "node:path";

const CLIENT_TIMEOUT_MS = 30_000;
const OUTAGE_MS = 10_000;

// ---------------------------------------------------------------------------------------------------
// helpers (local to this file)

/** Starts a GET on a new connection every intervalMs, not waiting for earlier ones (a client at 10/s). */
class PacedRequests {
  readonly results: HttpResult[] = [];
  readonly #pending = new Set<Promise<void>>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(port: number, intervalMs = 100) {
    this.#timer = setInterval(() => {
      const request = httpGet(port, "/", CLIENT_TIMEOUT_MS).then((r) => {
        this.results.push(r);
        this.#pending.delete(request);
      });
      this.#pending.add(request);
    }, intervalMs);
  }

  get failures(): HttpResult[] {
    return this.results.filter((r) => !r.ok);
  }

  /** Stops sending and waits for every request still in flight. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all([...this.#pending]);
  }
}

/** A state line of kf's text output: `<time> echo 127.0.0.1:P->80 svc/echo <state> ...`, with its time. */
function stateLines(proc: Proc): { at: number; state: string; line: string }[] {
  return proc.lines.flatMap((line) => {
    const match = line.match(/^(\S+Z) \S+ \S+ \S+ (\S+)/);
    return match ? [{ at: Date.parse(match[1]), state: match[2], line }] : [];
  });
}

/** The first state line at or after `since` (epoch ms) in that state. */
function firstState(proc: Proc, state: string, since: number) {
  return stateLines(proc).find((l) => l.state === state && l.at >= since);
}

interface SideBySide {
  /** kf with the default transport (auto: one WebSocket v4 per connection). */
  kf: Proc;
  kfLoad: PacedRequests;
  /** kf --transport spdy (a pool of SPDY connections, tunnelled in WebSockets). */
  spdy: Proc;
  spdyLoad: PacedRequests;
  kubectl: Proc;
  kubectlLoad: PacedRequests;
  stateDir: string;
}

/** kf forward (both transports) and kubectl port-forward on svc/echo, each under its own 10/s load. */
async function sideBySide(kubeconfig = cluster.kubeconfig): Promise<SideBySide> {
  const [kfPort, spdyPort, kubectlPort] = [freePort(), freePort(), freePort()];
  const stateDir = tempStateDir();
  const env = { KUBECONFIG: kubeconfig, KF_STATE_DIR: stateDir };
  const kfProc = startKf(["forward", "svc/echo", `${kfPort}:80`], env);
  const spdyProc = startKf(
    ["forward", "svc/echo", `${spdyPort}:80`, "--transport", "spdy", "--name", "spdy"],
    env,
  );
  const kubectlProc = new Proc("kubectl", ["port-forward", "svc/echo", `${kubectlPort}:80`], env);
  await kfProc.waitFor(/ready pod=/);
  await spdyProc.waitFor(/ready pod=/);
  await kubectlProc.waitFor(/Forwarding from/);
  const kfLoad = new PacedRequests(kfPort);
  const spdyLoad = new PacedRequests(spdyPort);
  const kubectlLoad = new PacedRequests(kubectlPort);
  await until(() => kfLoad.results.length >= 10, 10_000, "first requests");
  return { kf: kfProc, kfLoad, spdy: spdyProc, spdyLoad, kubectl: kubectlProc, kubectlLoad, stateDir };
}

async function finish(run: SideBySide, label: string): Promise<void> {
  await Promise.all([run.kfLoad.stop(), run.spdyLoad.stop(), run.kubectlLoad.stop()]);
  const exited = await Promise.race([
    run.kubectl.exited.then((s) => `exited ${s.code}`),
    sleep(10).then(() => "running"),
  ]);
  const count = (load: PacedRequests) => `${load.results.length} requests, ${load.failures.length} failed`;
  console.log(
    `${label}: kf ${count(run.kfLoad)}; kf --transport spdy ${count(run.spdyLoad)}; ` +
      `kubectl ${count(run.kubectlLoad)} (${exited})`,
  );
  for (const [load, proc] of [[run.kfLoad, run.kf], [run.spdyLoad, run.spdy]] as const) {
    if (load.failures.length === 0) continue;
    console.log(load.failures.slice(0, 5));
    console.log(proc.output);
  }
  await Promise.all([run.kf.stop(), run.spdy.stop(), run.kubectl.stop()]);
}

/**
 * Deletes the pod kf serves from, then (once its replacement is Ready) the other original pod: kf must move
 * to the remaining pod and then to the replacement, which only a watch that follows deletions and
 * additions can do. One ready pod exists throughout, so no request has to wait for the controllers.
 * With `onlyFirst`, only the first deletion is checked (and the replacement awaited): right after a
 * kube-apiserver restart the controllers themselves take up to a minute to replace a pod here.
 */
async function followsDeletions(load: PacedRequests, options: { onlyFirst?: boolean } = {}): Promise<void> {
  const original = new Set(await readyPods());
  const first = load.results.findLast((r) => r.ok && r.body)?.body;
  assert.ok(first && original.has(first), `kf serves from an original pod (${first})`);
  const second = [...original].find((p) => p !== first)!;
  for (const victim of options.onlyFirst ? [first] : [first, second]) {
    const from = load.results.length;
    const out = await kubectl(["delete", "pod", victim, "--force", "--grace-period=0", "--wait=false"]);
    assert.equal(out.code, 0, out.stderr);
    await until(
      () => load.results.slice(from).some((r) => r.ok && r.body && r.body !== victim),
      20_000,
      `requests served by another pod after deleting ${victim}`,
    );
    await until(
      async () => {
        const now = await readyPods();
        return now.length >= 2 && !now.includes(victim);
      },
      120_000,
      `a replacement for ${victim}`,
    );
  }
  if (options.onlyFirst) return;
  await until(
    () => load.results.some((r) => r.ok && r.body && !original.has(r.body)),
    20_000,
    "a request served by a replacement pod",
  );
}

/** The lines of a byte stream. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop()!;
    yield* parts;
  }
}

/** The stalling relay of _stall_relay.ts in its own process, in front of the API server. */
class StallingRelay {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines(child.stdout);
  }

  static async start(targetPort: number): Promise<{ relay: StallingRelay; port: number }> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(REPO, "tests", "e2e", "_stall_relay.ts"), String(targetPort)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const relay = new StallingRelay(child);
    const first = await relay.#lines.next();
    const port = Number(String(first.value).match(/^listening (\d+)$/)?.[1]);
    assert.ok(port > 0, `the relay did not start: ${first.value}`);
    return { relay, port };
  }

  async #command(command: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
    const answer = await this.#lines.next();
    assert.equal(answer.value, "ok");
  }

  stall(): Promise<void> {
    return this.#command("stall");
  }

  resume(): Promise<void> {
    return this.#command("resume");
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // gone
    }
    await this.#lines.return?.(undefined);
    await this.#child.status;
  }
}

/** A copy of the test kubeconfig whose server is the relay (the API server's cert is valid for 127.0.0.1). */
function kubeconfigVia(port: number): string {
  const text = Deno.readTextFileSync(cluster.kubeconfig);
  const file = Deno.makeTempFileSync({ prefix: "kf-relay-", suffix: ".kubeconfig" });
  Deno.writeTextFileSync(
    file,
    text.replace(/server: https:\/\/127\.0\.0\.1:\d+/g, `server: https://127.0.0.1:${port}`),
  );
  return file;
}

function apiServerPort(): number {
  const match = Deno.readTextFileSync(cluster.kubeconfig).match(/server: https:\/\/127\.0\.0\.1:(\d+)/);
  assert.ok(match, "the test kubeconfig names a 127.0.0.1 server");
  return Number(match[1]);
}

// ---------------------------------------------------------------------------------------------------

Deno.test("kube-apiserver killed for 10 s: kf fails no request, says degraded then ready, and follows a pod deletion after", async () => {
  await resetEcho();
  const apiserver = component("kube-apiserver");
  const run = await sideBySide();
  let restarted = false;
  try {
    await sleep(1_000);
    const killedAt = Date.now();
    await kill("kube-apiserver");
    const degraded = await run.kf.waitFor(/ degraded /, 8_000).then(() =>
      firstState(run.kf, "degraded", killedAt)
    );
    assert.ok(degraded, "kf says degraded");
    const ps = await kf(["ps", "-o", "json"], { env: { KF_STATE_DIR: run.stateDir } });
    assert.match(ps.stdout, /"state":"degraded"/, "kf ps shows the same state");
    await sleep(Math.max(0, killedAt + OUTAGE_MS - Date.now()));
    const restartedAt = Date.now();
    await start(apiserver);
    restarted = true;
    await until(apiServerReady, 60_000, "kube-apiserver ready again");
    const upAt = Date.now();
    await until(() => firstState(run.kf, "ready", killedAt), 30_000, "kf ready again");
    const ready = firstState(run.kf, "ready", killedAt)!;
    assert.ok(ready.at >= restartedAt, `kf said ready while the API server was down: ${ready.line}`);
    console.log(
      `apiserver: degraded ${degraded.at - killedAt} ms after the kill (${degraded.line.slice(25, 200)}); ` +
        `API ready ${upAt - killedAt} ms after the kill; kf ready ${ready.at - killedAt} ms after the kill`,
    );
    assert.ok(degraded.at - killedAt < 5_000, `degraded ${degraded.at - killedAt} ms after the kill`);
    // a pod deletion after the recovery is followed
    await followsDeletions(run.kfLoad, { onlyFirst: true });
  } finally {
    if (!restarted) await start(apiserver);
    await until(apiServerReady, 60_000, "kube-apiserver ready again");
    await finish(run, "apiserver killed 10 s");
  }
  assert.deepEqual(run.kfLoad.failures, [], "kf must not fail a request while the API server restarts");
  assert.deepEqual(run.spdyLoad.failures, [], "nor with --transport spdy");
});

Deno.test("etcd killed for 10 s: kf fails no request", async () => {
  await resetEcho();
  const etcd = component("etcd");
  const run = await sideBySide();
  let restarted = false;
  try {
    await sleep(1_000);
    const killedAt = Date.now();
    await kill("etcd");
    await sleep(OUTAGE_MS);
    await start(etcd);
    restarted = true;
    await until(apiServerReady, 60_000, "the API server ready again");
    // with etcd gone the API server still answers what needs no storage, and connections on open SPDY
    // connections go on: kf may never see trouble, and then it rightly never leaves ready
    const degraded = firstState(run.kf, "degraded", killedAt);
    const ready = degraded
      ? (await until(() => firstState(run.kf, "ready", degraded.at), 30_000, "kf ready again"))!
      : undefined;
    console.log(
      `etcd: degraded ${
        degraded ? `${degraded.at - killedAt} ms after the kill (${degraded.line.slice(25, 200)})` : "never"
      }; kf ready ${ready ? `${ready.at - killedAt} ms after the kill` : "throughout"}`,
    );
    // the watch still works afterwards: the replacements of deleted pods are served
    await followsDeletions(run.kfLoad);
  } finally {
    if (!restarted) await start(etcd);
    await finish(run, "etcd killed 10 s");
  }
  assert.deepEqual(run.kfLoad.failures, [], "kf must not fail a request while etcd restarts");
  assert.deepEqual(run.spdyLoad.failures, [], "nor with --transport spdy");
});

Deno.test("a silently stalled path to the API server for 20 s: kf says degraded, fails no request, recovers", async () => {
  await resetEcho();
  const { relay, port: relayPort } = await StallingRelay.start(apiServerPort());
  const kubeconfig = kubeconfigVia(relayPort);
  const run = await sideBySide(kubeconfig);
  try {
    await sleep(1_000);
    const stalledAt = Date.now();
    await relay.stall();
    const degraded = await run.kf.waitFor(/ degraded /, 10_000).then(() =>
      firstState(run.kf, "degraded", stalledAt)
    );
    assert.ok(degraded);
    await sleep(Math.max(0, stalledAt + 20_000 - Date.now()));
    const resumedAt = Date.now();
    await relay.resume();
    const ready = (await until(() => firstState(run.kf, "ready", resumedAt), 20_000, "kf ready again"))!;
    console.log(
      `silent path: degraded ${degraded.at - stalledAt} ms after the stall (${
        degraded.line.slice(25, 200)
      }); ` +
        `ready ${ready.at - resumedAt} ms after it ended`,
    );
    assert.ok(degraded.at - stalledAt < 5_000, `degraded ${degraded.at - stalledAt} ms after the stall`);
    await followsDeletions(run.kfLoad);
  } finally {
    await finish(run, "silent path 20 s");
    await relay.close();
    Deno.removeSync(kubeconfig);
  }
  assert.deepEqual(run.kfLoad.failures, [], "kf must not fail a request while the path is silent");
  assert.deepEqual(run.spdyLoad.failures, [], "nor with --transport spdy");
});

Deno.test("kf stopped for 60 s (SIGSTOP) serves again within 3 s of SIGCONT", async () => {
  await resetEcho();
  const kfPort = freePort();
  const kubectlPort = freePort();
  const kfProc = startKf(["forward", "svc/echo", `${kfPort}:80`], { KF_STATE_DIR: tempStateDir() });
  const kubectlProc = new Proc("kubectl", ["port-forward", "svc/echo", `${kubectlPort}:80`]);
  try {
    await kfProc.waitFor(/ready pod=/);
    await kubectlProc.waitFor(/Forwarding from/);
    assert.ok((await httpGet(kfPort)).ok);
    Deno.kill(kfProc.pid, "SIGSTOP");
    Deno.kill(kubectlProc.pid, "SIGSTOP");
    await sleep(55_000);
    // a client that connects while kf is stopped: the kernel accepts, kf serves it once it runs again
    const during = httpGet(kfPort, "/", CLIENT_TIMEOUT_MS);
    await sleep(5_000);
    const contAt = Date.now();
    Deno.kill(kfProc.pid, "SIGCONT");
    Deno.kill(kubectlProc.pid, "SIGCONT");
    const first = await httpGet(kfPort, "/", 10_000);
    const waited = await during;
    const viaKubectl = await httpGet(kubectlPort, "/", 10_000);
    const loop = new RequestLoop(kfPort, 100);
    await sleep(5_000);
    await loop.stop();
    const servedIn = first.endedAt - first.startedAt;
    console.log(
      `SIGSTOP 60 s: kf served ${
        servedIn.toFixed(0)
      } ms after SIGCONT, then ${loop.results.length} requests, ` +
        `${loop.failures.length} failed; kubectl: ${
          viaKubectl.ok ? "served" : `failed (${viaKubectl.error})`
        }`,
    );
    assert.ok(first.ok, `the first request after SIGCONT failed: ${first.error}`);
    assert.ok(servedIn < 3_000, `served ${servedIn} ms after SIGCONT`);
    assert.ok(waited.ok, `the request made during the stop failed: ${waited.error}`);
    assert.ok(waited.endedAt - first.startedAt < 3_000, "the request made during the stop is served at once");
    assert.deepEqual(loop.failures, []);
    // the wake is visible, and the reconnect after it settles back to ready
    const settling = firstState(kfProc, "settling", contAt);
    assert.ok(settling, `kf shows settling after the wake:\n${kfProc.output}`);
    const ready = await until(() => firstState(kfProc, "ready", settling.at), 10_000, "ready after settling");
    console.log(
      `wake: settling ${settling.at - contAt} ms after SIGCONT, ready ${ready!.at - contAt} ms after`,
    );
  } finally {
    for (const proc of [kfProc, kubectlProc]) {
      try {
        Deno.kill(proc.pid, "SIGCONT");
      } catch {
        // gone
      }
    }
    await Promise.all([kfProc.stop(), kubectlProc.stop()]);
  }
});

Deno.test("20 rounds of pod churn in a row: kf fails no request", async () => {
  await resetEcho();
  const port = freePort();
  const kfProc = startKf(["forward", "svc/echo", `${port}:80`], { KF_STATE_DIR: tempStateDir() });
  try {
    await kfProc.waitFor(/ready pod=/);
    const loop = new RequestLoop(port, 50);
    await until(() => loop.results.length >= 10, 10_000, "first requests");
    const served = new Set<string>();
    for (let round = 0; round < 20; round++) {
      await forceDeletePods("app=echo", { what: `replacement pods in round ${round + 1}` });
      const count = loop.results.length;
      await until(() => loop.results.length >= count + 5, 30_000, "requests after the round");
    }
    await loop.stop();
    for (const r of loop.results) if (r.ok && r.body) served.add(r.body);
    console.log(
      `churn x20: ${loop.results.length} requests, ${loop.failures.length} failed, ${served.size} pods`,
    );
    if (loop.failures.length > 0) console.log(loop.failures.slice(0, 5), kfProc.output);
    assert.deepEqual(loop.failures, []);
    assert.ok(served.size >= 20, `requests should reach replacement pods, got ${served.size}`);
  } finally {
    await kfProc.stop();
  }
});
