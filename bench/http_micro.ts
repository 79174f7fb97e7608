/**
 * kf's own CPU cost per HTTP exchange and per downloaded chunk, without a cluster: HttpConnection
 * (`--protocol auto`/`http`) against Tunnel (`--protocol tcp`) in one process, each carrying a real loopback
 * client connection to a fake pod (an in-process upstream that answers every request at once). Everything
 * else on the path (TLS, the API server, the kubelet, the backend) is left out, so what differs between the
 * two columns is only what the carriers do — the part of bench scenario 13 that kf's own code decides.
 *
 *   deno run -A bench/http_micro.ts [--reps 5] [--requests 20000] [--connections 20] [--mib 256]
 *     [--modes auto,tcp] [--chunk 32768]
 */

import { Session } from "node:inspector";
import process from "node:process";
import { parseArgs } from "node:util";
import { HttpConnection } from "../src/forward/http/connection.ts";
import { Tunnel, type TunnelCounters } from "../src/forward/tunnel.ts";
import type { Upstream } from "../src/forward/prewarm.ts";
import type { PodReceiver, PodStream } from "../src/transport/mod.ts";
import { systemClock } from "../src/clock.ts";
import { median } from "./lib/stats.ts";

const { values: flags } = parseArgs({
  options: {
    reps: { type: "string", default: "5" },
    requests: { type: "string", default: "20000" },
    connections: { type: "string", default: "20" },
    mib: { type: "string", default: "256" },
    chunk: { type: "string", default: String(32 * 1024) },
    modes: { type: "string", default: "auto,tcp" },
    // keep-alive clients as in-memory connections instead of loopback TCP: no syscalls, only the carriers' JS
    memory: { type: "boolean", default: false },
    // a V8 CPU profile of the measured runs (Chrome DevTools format), to see where the time goes
    "cpu-profile": { type: "string" },
    /** Which runs the profile covers: ab, download, or both. */
    "profile-phase": { type: "string", default: "both" },
  },
});
const REPS = Number(flags.reps);
const REQUESTS = Number(flags.requests);
const CONNECTIONS = Number(flags.connections);
const DOWNLOAD_BYTES = Number(flags.mib) * 1024 * 1024;
const CHUNK = Number(flags.chunk);
type Mode = "auto" | "tcp";
const MODES = flags.modes!.split(",") as Mode[];

const encoder = new TextEncoder();
const SMALL_BODY = 100;
const smallResponse = encoder.encode(
  "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/octet-stream\r\n" +
    "Date: Tue, 01 Dec 2026 13:00:00 GMT\r\nX-Pod: echo-5d9c7b6f4-abcde\r\n\r\n" + "x".repeat(SMALL_BODY),
);
const smallRequest = encoder.encode(
  "GET /bytes?n=100 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\n" +
    "Accept: */*\r\n\r\n",
);

/** A pod behind the PodStream seam: every request chunk gets `answer` at once. */
class FakePod implements PodStream {
  readonly pod = "echo-0";
  lastHeardAt = systemClock.now();
  readonly closed: Promise<Error | undefined>;
  readonly #settle: (error: Error | undefined) => void;
  #receiver?: PodReceiver;
  #held: Uint8Array[] = [];
  #open = true;
  #paused = false;
  #resumed?: PromiseWithResolvers<void>;

  constructor(readonly answer: (pod: FakePod) => void) {
    const { promise, resolve } = Promise.withResolvers<Error | undefined>();
    this.closed = promise;
    this.#settle = resolve;
  }
  get open(): boolean {
    return this.#open;
  }
  receive(receiver: PodReceiver | undefined): void {
    this.#receiver = receiver;
    if (!receiver) return;
    const held = this.#held;
    this.#held = [];
    for (const chunk of held) receiver(chunk);
  }
  /** The pod's bytes toward kf. */
  send(chunk: Uint8Array): void {
    if (this.#receiver) this.#receiver(chunk);
    else this.#held.push(chunk);
  }
  write(chunk: Uint8Array, sent?: () => void): void {
    queueMicrotask(() => {
      sent?.();
      if (chunk.length > 0 && this.#open) this.answer(this);
    });
  }
  closeWrite(): boolean {
    return false;
  }
  ping(): Promise<void> {
    return Promise.resolve();
  }
  pause(): void {
    this.#paused = true;
  }
  resume(): void {
    this.#paused = false;
    this.#resumed?.resolve();
    this.#resumed = undefined;
  }
  async whenResumed(): Promise<void> {
    while (this.#paused && this.#open) {
      this.#resumed ??= Promise.withResolvers();
      await this.#resumed.promise;
    }
  }
  release(): void {
    this.reset();
  }

  reset(reason?: Error): void {
    if (!this.#open) return;
    this.#open = false;
    this.resume();
    this.#settle(reason);
  }
}

function upstreamOf(pod: FakePod): Upstream {
  return { stream: pod, endpoint: { pod: "echo-0", uid: "u0", port: 8080 }, early: [] };
}

function smallPod(): Upstream {
  return upstreamOf(new FakePod((pod) => pod.send(smallResponse)));
}

function downloadPod(): Upstream {
  const head = encoder.encode(
    `HTTP/1.1 200 OK\r\nContent-Length: ${DOWNLOAD_BYTES}\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  let started = false;
  return upstreamOf(
    new FakePod(async (pod) => {
      if (started) return;
      started = true;
      pod.send(head);
      let left = DOWNLOAD_BYTES;
      let n = 0;
      while (left > 0 && pod.open) {
        await pod.whenResumed();
        // a fresh chunk per read, like a transport's reader hands over
        const size = Math.min(CHUNK, left);
        pod.send(new Uint8Array(size));
        left -= size;
        // the carrier pauses the pod at its high-water mark; that wait lets the event loop run
        if (++n % 64 === 0) await new Promise((r) => setTimeout(r, 0));
        else await Promise.resolve();
      }
    }),
  );
}

const counters: TunnelCounters = { bytesIn: 0, bytesOut: 0 };

function carrier(mode: Mode, local: Deno.Conn, open: () => Upstream, signal: AbortSignal) {
  if (mode === "tcp") {
    return new Tunnel({
      local,
      counters,
      signal,
      clock: systemClock,
      acquire: () => Promise.resolve(open()),
    });
  }
  return new HttpConnection({
    local,
    counters,
    signal,
    clock: systemClock,
    first: Promise.resolve(open()),
    choose: () => "echo-0",
    acquire: () => Promise.resolve(open()),
    onRequest: () => {},
  });
}

/** Accepts connections and runs a carrier per connection. */
function serve(mode: Mode, open: () => Upstream) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const abort = new AbortController();
  const runs: Promise<unknown>[] = [];
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      runs.push(carrier(mode, conn, open, abort.signal).run());
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async stop() {
      listener.close();
      abort.abort();
      await Promise.all(runs);
    },
  };
}

/**
 * A client connection held in memory (the carrier's side is the part of Deno.Conn it uses: read, writable,
 * close), so that a run measures the carriers' JavaScript and not the kernel's loopback.
 */
class MemoryConn {
  #incoming: Uint8Array[] = [];
  #reader?: PromiseWithResolvers<void>;
  #ended = false;
  #received = 0;
  #want = 0;
  #answered?: PromiseWithResolvers<void>;
  readonly writable = new WritableStream<Uint8Array>({
    write: (chunk) => {
      this.#received += chunk.length;
      if (this.#answered && this.#received >= this.#want) this.#answered.resolve();
    },
  });

  /** The client sends `bytes` and waits until `answer` bytes came back. */
  exchange(bytes: Uint8Array, answer: number): Promise<void> {
    this.#received = 0;
    this.#want = answer;
    this.#answered = Promise.withResolvers();
    this.#incoming.push(bytes);
    this.#reader?.resolve();
    return this.#answered.promise;
  }

  end(): void {
    this.#ended = true;
    this.#reader?.resolve();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#incoming.length === 0) {
      if (this.#ended) return null;
      this.#reader = Promise.withResolvers();
      await this.#reader.promise;
    }
    const chunk = this.#incoming.shift()!;
    buffer.set(chunk);
    return chunk.length;
  }

  close(): void {
    this.#ended = true;
  }
}

async function keepAliveInMemory(mode: Mode): Promise<number> {
  const perConnection = Math.ceil(REQUESTS / CONNECTIONS);
  const abort = new AbortController();
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    const conn = new MemoryConn();
    const running = carrier(mode, conn as unknown as Deno.Conn, smallPod, abort.signal).run();
    for (let i = 0; i < perConnection; i++) await conn.exchange(smallRequest, smallResponse.length);
    conn.end();
    await running;
  }));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  lastCpuPerRequest = (used.user + used.system) / (perConnection * CONNECTIONS);
  return (perConnection * CONNECTIONS) / seconds;
}

/** CPU time of this process (client and carrier together) during the last keep-alive run, per request. */
let lastCpuPerRequest = 0;

async function keepAliveRate(mode: Mode): Promise<number> {
  if (flags.memory) return await keepAliveInMemory(mode);
  const server = serve(mode, smallPod);
  const perConnection = Math.ceil(REQUESTS / CONNECTIONS);
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    conn.setNoDelay(true);
    const buffer = new Uint8Array(64 * 1024);
    for (let i = 0; i < perConnection; i++) {
      await conn.write(smallRequest);
      let got = 0;
      while (got < smallResponse.length) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`${mode}: connection closed after ${i} requests`);
        got += n;
      }
    }
    conn.close();
  }));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  lastCpuPerRequest = (used.user + used.system) / (perConnection * CONNECTIONS);
  await server.stop();
  return (perConnection * CONNECTIONS) / seconds;
}

async function downloadRate(mode: Mode): Promise<number> {
  const server = serve(mode, downloadPod);
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(encoder.encode("GET /bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const buffer = new Uint8Array(1 << 20);
  let got = 0;
  const want = DOWNLOAD_BYTES + 60;
  while (got < want) {
    const n = await conn.read(buffer);
    if (n === null) break;
    got += n;
  }
  const seconds = (performance.now() - started) / 1000;
  conn.close();
  await server.stop();
  return DOWNLOAD_BYTES / 1024 / 1024 / seconds;
}

const rps: Record<string, number[]> = {};
const mibps: Record<string, number[]> = {};
for (const mode of MODES) {
  rps[mode] = [];
  mibps[mode] = [];
}
// warm-up (JIT)
for (const mode of MODES) await keepAliveRate(mode);
const profiler = flags["cpu-profile"] ? new Session() : undefined;
const post = (method: string, params?: object) =>
  new Promise<unknown>((resolve, reject) =>
    profiler!.post(method, params ?? {}, (error, result) => error ? reject(error) : resolve(result))
  );
if (profiler) {
  profiler.connect();
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 100 });
}
const phase = flags["profile-phase"];
/** Runs one measurement, under the profiler when its phase is profiled. */
async function measured(which: "ab" | "download", run: () => Promise<number>): Promise<number> {
  const profiled = profiler && (phase === "both" || phase === which);
  if (profiled) await post("Profiler.start");
  try {
    return await run();
  } finally {
    if (profiled) {
      const { profile } = await post("Profiler.stop") as { profile: Profile };
      profiles.push(profile);
    }
  }
}
interface Profile {
  nodes: unknown[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}
const profiles: Profile[] = [];
const cpu: Record<string, number[]> = {};
for (const mode of MODES) cpu[mode] = [];
for (let rep = 0; rep < REPS; rep++) {
  for (const mode of rep % 2 === 0 ? MODES : [...MODES].reverse()) {
    rps[mode].push(await measured("ab", () => keepAliveRate(mode)));
    cpu[mode].push(lastCpuPerRequest);
    mibps[mode].push(await measured("download", () => downloadRate(mode)));
    const last = (list: number[], digits = 0) => list.at(-1)!.toFixed(digits);
    console.log(
      `rep ${rep + 1} ${mode}: ${last(rps[mode])} req/s (CPU ${last(cpu[mode], 1)} us/request), ` +
        `${last(mibps[mode])} MiB/s`,
    );
  }
}
if (profiler) {
  // one profile per measured run; each is a Chrome DevTools .cpuprofile
  profiles.forEach((profile, i) =>
    Deno.writeTextFileSync(`${flags["cpu-profile"]}.${i + 1}.cpuprofile`, JSON.stringify(profile))
  );
}
for (const mode of MODES) {
  const m = median(rps[mode]);
  console.log(
    `${mode}: median ${m.toFixed(0)} req/s (${(1e6 / m).toFixed(1)} us/request wall, ` +
      `${median(cpu[mode]).toFixed(1)} us/request CPU), ${median(mibps[mode]).toFixed(0)} MiB/s`,
  );
}
if (MODES.includes("auto") && MODES.includes("tcp")) {
  const wall = 1e6 / median(rps.auto) - 1e6 / median(rps.tcp);
  const extra = median(cpu.auto) - median(cpu.tcp);
  console.log(
    `auto/tcp: req/s ${(median(rps.auto) / median(rps.tcp)).toFixed(3)} (${
      wall.toFixed(1)
    } us/request wall, ` +
      `${extra.toFixed(1)} us/request CPU), MiB/s ${(median(mibps.auto) / median(mibps.tcp)).toFixed(3)}`,
  );
}
