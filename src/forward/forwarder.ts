/** One forward (one config entry): its local listeners, the pod it uses now, and every connection it carries. */

import type { ForwardSpec, Transport } from "../config/mod.ts";
import { formatTarget, listenHosts } from "../config/mod.ts";
import type { Clock } from "../clock.ts";
import type { KubeClient } from "../kube/client.ts";
import { ApiError } from "../kube/errors.ts";
import type { ClusterHealth } from "../kube/health.ts";
import type { Pod } from "../kube/types.ts";
import type { SharedWatches } from "../watch/mod.ts";
import { LocalListenError, NoReadyPodError } from "./errors.ts";
import { type BoundListener, ListenFailure, listenOnHosts } from "./listen.ts";
import {
  choosePod,
  choosePodRoundRobin,
  type Endpoint,
  endpointFor,
  isPodReady,
  standbyPods,
} from "./picker.ts";
import type { ForwardState, ForwardStatus, WireTransport } from "./status.ts";
import { TargetWatch } from "./target_watch.ts";
import { Tunnel, type TunnelCounters } from "./tunnel.ts";
import { KeptUpstreams } from "./http/kept_upstreams.ts";
import { Prewarm, type Upstream } from "./prewarm.ts";
import { fallbackDialer, type PodDialer, spdyDialer, SpdyPool, webSocketDialer } from "../transport/mod.ts";
import { HttpConnection, type RequestLogEntry } from "./http/connection.ts";
import { sniffConnection } from "./http/sniff.ts";
import { Backoff } from "../watch/backoff.ts";
import { keepAliveInterval } from "./liveness.ts";
import { DEFAULT_STREAM_IDLE_TIMEOUT_MS } from "../config/mod.ts";
import { DialSlots } from "./dial_slots.ts";
import { classifyDialFailure, DIAL_RETRY_INITIAL_MS, DIAL_RETRY_MAX_MS } from "./dial_retry.ts";
import { abortRoutine } from "../abort.ts";

export interface ForwardDeps {
  client: KubeClient;
  watches: SharedWatches;
  clock: Clock;
  /** Opens pod streams; tests and benchmarks may replace it. @default per the spec's transport */
  open?: PodDialer;
  /**
   * The cluster's shared reachability (one per client, owned by the session): dials report to it, and the
   * forward shows `degraded` while it says the API server cannot be reached.
   */
  health?: ClusterHealth;
}

/** Pods besides the picked one that get a warm SPDY connection (a replacement, the next ready pod). */
const STANDBY_PODS = 2;

/**
 * auto: how long a pod answers HTTP over v4 before the SPDY pool opens its connections to it. At a handover
 * (or in a churn of short-lived pods) their handshakes would compete with the v4 dials that matter then; a
 * client that keeps opening connections has them after this.
 */
const POOL_AFTER_MS = 1_500;

/**
 * How long a forward without a ready pod keeps a spare connection to the API server for the dial to the
 * replacement (src/kube/spare_connections.ts); a connection that starts waiting for a pod renews it. A
 * target scaled to zero stops costing handshakes after this.
 */
const SPARE_HOLD_MS = 60_000;

/** WebSocket dials of one forward at a time (SPDY streams need no dial of their own once connected). */
const MAX_CONCURRENT_DIALS = 8;
/** A dial still unanswered after this long hints at a silent path: the cluster's health probe starts. */
const SLOW_DIAL_MS = 1_000;

/** Something worth telling the user about one forward. */
export type ForwardEvent =
  | { type: "status"; status: ForwardStatus }
  | { type: "connection-error"; forward: string; pod?: string; message: string }
  // with logRequests: one finished HTTP request
  | { type: "request"; forward: string; request: RequestLogEntry };

interface PortRuntime {
  remote: number | string;
  localPort: number;
  /** One per host of the forward's addresses (127.0.0.1 and ::1 for localhost), all on localPort. */
  listeners: BoundListener[];
  prewarm: Prewarm;
  /** Idle HTTP upstreams left open by finished connections, for the next ones. */
  kept: KeptUpstreams;
  /** Has carried an HTTP connection: its connections may go on auto's SPDY pool. */
  http: boolean;
  /** The pod of the last HTTP answer #answeredHttp looked at since the target changed (most are alike). */
  answeredPod?: string;
}

/** Runs one forward until its signal aborts; failures stay inside it (the others keep running). */
export class Forward {
  readonly spec: ForwardSpec;
  readonly namespace: string;
  readonly #deps: ForwardDeps;
  readonly #open: PodDialer;
  readonly #target: TargetWatch;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<(event: ForwardEvent) => void>();
  readonly #ports: PortRuntime[] = [];
  readonly #tunnels = new Set<Tunnel | HttpConnection>();
  readonly #counters: TunnelCounters = { bytesIn: 0, bytesOut: 0 };
  readonly #accepting: Promise<void>[] = [];
  /** Set while stop() waits for open connections to finish. */
  #drained?: PromiseWithResolvers<void>;
  #state: ForwardState = "starting";
  #transport: WireTransport = "spdy-websocket";
  /** auto only: the SPDY pool that carries a pod's HTTP connections once it has answered one (see #opener). */
  #httpPool?: SpdyPool;
  /** The pool has carried a connection: the status says so. */
  #httpPoolUsed = false;
  /** Pods (uids) that answered HTTP and whose pool connections open after POOL_AFTER_MS. */
  readonly #poolPending = new Set<string>();
  /** "pod port" pairs #answeredHttp has looked at; emptied when the target's pods change (names come back). */
  readonly #answeredPods = new Set<string>();
  /**
   * #endpointNow's answer per remote port for the common question (no pod excluded, no preference): it
   * only changes with the target, and a keep-alive client asks it for every request.
   */
  readonly #pickedEndpoints = new Map<number | string, Endpoint | undefined>();
  #pod?: string;
  #hadPod = false;
  #totalConnections = 0;
  #lastError?: string;
  #lastErrorAt?: number;
  #requests = 0;
  #serverErrors = 0;
  /** The pod the last round-robin request went to. */
  #lastRoundRobin?: string;
  #settling = false;
  readonly #dialSlots = new DialSlots(MAX_CONCURRENT_DIALS);
  /** Held while the forward has no ready pod (see SPARE_HOLD_MS). */
  #spareHold?: AbortController;
  /** Keep-alive traffic interval of open connections, below the path's idle limit. */
  readonly #keepAliveMs: number;

  constructor(spec: ForwardSpec, deps: ForwardDeps) {
    this.spec = spec;
    this.#deps = deps;
    this.namespace = spec.namespace ?? deps.client.defaultNamespace;
    this.#keepAliveMs = keepAliveInterval(spec.streamIdleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS);
    this.#open = deps.open ? this.#observed(deps.open) : this.#opener(spec.transport ?? "auto");
    this.#target = new TargetWatch({
      client: deps.client,
      watches: deps.watches,
      target: spec.target,
      namespace: this.namespace,
      clock: deps.clock,
    });
  }

  /**
   * How pod streams are opened, per the spec's transport: `websocket` is one WebSocket v4 per connection;
   * `spdy` is the SPDY pool (tunnelled in a WebSocket, then the legacy upgrade once the tunnel is refused:
   * an older server, a proxy, RBAC without `get`); `auto` is v4 until RBAC refuses it, then the pool. Each
   * step is taken once and for good.
   */
  #opener(transport: Transport): PodDialer {
    const websocket = this.#observed(webSocketDialer(this.#deps.client, this.namespace, this.#deps.clock));
    if (transport === "websocket") {
      this.#transport = "websocket";
      return websocket;
    }
    this.#transport = "spdy-websocket";
    const poolOptions = {
      signal: this.#abort.signal,
      clock: this.#deps.clock,
      keepAliveMs: this.#keepAliveMs,
      // only opening a connection goes to the API server; streams on an open one prove nothing about it
      onDial: (pod: string, opening: Promise<unknown>) => this.#observeDial(pod, opening, this.#abort.signal),
    };
    const spdy = spdyDialer(this.#deps.client, this.namespace, {
      ...poolOptions,
      onCarrier: (carrier) => {
        this.#transport = carrier === "websocket" ? "spdy-websocket" : "spdy-upgrade";
        this.#changed();
      },
    });
    if (transport === "spdy") return spdy;
    // auto: a pod's first connections over WebSocket v4, its later HTTP connections on pooled SPDY
    // connections. Measured on the local cluster under churn (force-deleting all pods, e2e churn test, 3 runs
    // each): v4 hands over to a replacement pod in p50 64-83 ms, the SPDY pool alone in 76-106 ms (a handshake
    // either way, but more of them at once). Once a pod has answered HTTP, the pool opens its spares: a new
    // connection on an idle one costs two SYN_STREAMs instead of a TLS and WebSocket handshake (~4x the
    // new-connection rate of v4 alone). Other TCP stays on v4: per message it costs less CPU than
    // SPDY in a WebSocket (redis GET over 20 connections: 6300 vs 5200-5400 ops/s).
    // RBAC that refuses the WebSocket (a Role with only `create`, written for kubectl) moves everything to
    // the SPDY pool for good.
    this.#transport = "websocket";
    // The pool goes over the legacy upgrade first: the API server relays its bytes as they are, where the
    // tunnel re-frames them into small WebSocket messages (1 GiB GET with curl, on native TLS: 385-405 MiB/s
    // at 1.6-1.7 s of kf CPU per GiB; the tunnel 320-340 MiB/s at 2.3-2.6 s). A server or proxy that
    // refuses the upgrade gets the tunnel from then on.
    this.#httpPool = new SpdyPool(this.#deps.client, this.namespace, {
      ...poolOptions,
      carriers: ["upgrade", "websocket"],
      onlyServedPods: true,
    });
    return fallbackDialer(
      websocket,
      () => spdy,
      (error) => error instanceof ApiError && error.status === 403,
      () => {
        this.#transport = "spdy-websocket";
        this.#httpPool = undefined;
        // the pool warms connections itself: drop the v4 warm sockets and point it at the current pods
        this.renewUpstreams();
        this.#onTargetChange();
        this.#changed();
      },
    );
  }

  /** An opener whose every call is a dial through the API server (a WebSocket upgrade each), observed. */
  #observed(open: PodDialer): PodDialer {
    return (endpoint, signal) => {
      const opening = open(endpoint, signal);
      this.#observeDial(endpoint.pod, opening, signal);
      return opening;
    };
  }

  /**
   * Reports a dial's outcome to the cluster's health: a success proves the path, a transient failure or a
   * dial still unanswered after SLOW_DIAL_MS is a reason to probe. Covers the prewarm's dials too.
   */
  #observeDial(pod: string, opening: Promise<unknown>, signal: AbortSignal): void {
    const health = this.#deps.health;
    if (!health) return;
    const slow = new AbortController();
    this.#deps.clock.sleep(SLOW_DIAL_MS, slow.signal).then(
      () => health.suspect(`a port-forward dial to ${pod} has no answer after ${SLOW_DIAL_MS} ms`),
      () => {},
    );
    opening.then(
      () => health.succeeded(),
      (error) => {
        if (!signal.aborted && classifyDialFailure(error) === "transient") {
          health.suspect((error as Error).message);
        }
      },
    ).finally(() => abortRoutine(slow));
  }

  /** The network changed or the machine woke: shown as `settling` until the session renews the upstreams. */
  setSettling(settling: boolean): void {
    if (this.#settling === settling) return;
    this.#settling = settling;
    this.#updateState();
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Subscribes to status changes and connection errors. */
  subscribe(listener: (event: ForwardEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Binds every local port, then follows the target. Throws LocalListenError when a port cannot be bound;
   * the forward is then "failed" and holds nothing.
   */
  start(): void {
    try {
      for (const mapping of this.spec.ports) this.#ports.push(this.#listen(mapping.local, mapping.remote));
    } catch (error) {
      for (const port of this.#ports) for (const { listener } of port.listeners) listener.close();
      this.#ports.length = 0;
      this.#fail(error as Error);
      throw error;
    }
    this.#target.subscribe(() => this.#onTargetChange());
    if (this.#deps.health) {
      const unsubscribe = this.#deps.health.subscribe(() => this.#updateState());
      this.#abort.signal.addEventListener("abort", unsubscribe, { once: true });
    }
    this.#target.start(this.#abort.signal);
    for (const port of this.#ports) {
      for (const { listener } of port.listeners) this.#accepting.push(this.#acceptLoop(port, listener));
    }
    this.#onTargetChange();
  }

  /** Stops accepting, lets open connections finish for up to graceMs, then cuts them. */
  async stop(graceMs = 2_000): Promise<void> {
    if (this.#abort.signal.aborted) return;
    for (const { listener } of this.#ports.flatMap((port) => port.listeners)) {
      try {
        listener.close();
      } catch {
        // already closed
      }
    }
    await Promise.allSettled(this.#accepting);
    if (this.#tunnels.size > 0) {
      // the last connection to end wakes the wait (see #serve), no polling
      this.#drained = Promise.withResolvers<void>();
      const grace = new AbortController();
      await Promise.race([
        this.#drained.promise,
        this.#deps.clock.sleep(graceMs, grace.signal).catch(() => {}),
      ]);
      abortRoutine(grace);
    }
    this.#abort.abort(new Error("forward stopped"));
    if (this.#state !== "failed") this.#setState("stopped");
  }

  /** Replaces warm and kept upstreams (after a suspend); open connections find out by their own pings. */
  renewUpstreams(): void {
    for (const port of this.#ports) {
      port.prewarm.renew();
      port.kept.drop();
    }
  }

  /** Ends every connection at once (a second Ctrl-C); stop() then finishes without waiting. */
  abort(): void {
    for (const tunnel of this.#tunnels) tunnel.close();
  }

  status(): ForwardStatus {
    return {
      name: this.spec.name,
      target: formatTarget(this.spec.target),
      context: this.#deps.client.contextName,
      namespace: this.namespace,
      listeners: this.#ports.flatMap((p) =>
        p.listeners.map((l) => ({ address: l.hostname, port: p.localPort, remote: p.remote }))
      ),
      state: this.#state,
      pod: this.#pod,
      openConnections: this.#tunnels.size,
      totalConnections: this.#totalConnections,
      bytesIn: this.#counters.bytesIn,
      bytesOut: this.#counters.bytesOut,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      transport: this.#httpPool && this.#httpPoolUsed
        ? `websocket+${this.#httpPool.carrier === "websocket" ? "spdy-websocket" : "spdy-upgrade"}`
        : this.#transport,
      requests: this.#requests,
      serverErrors: this.#serverErrors,
    };
  }

  #listen(localPort: number, remote: number | string): PortRuntime {
    let bound: ReturnType<typeof listenOnHosts>;
    try {
      bound = listenOnHosts(listenHosts(this.spec.addresses), localPort);
    } catch (error) {
      if (!(error instanceof ListenFailure)) throw error;
      const where = error.hostname.includes(":")
        ? `[${error.hostname}]:${error.port}`
        : `${error.hostname}:${error.port}`;
      if (error.cause instanceof Deno.errors.AddrInUse) {
        throw new LocalListenError(
          `Forward '${this.spec.name}': cannot listen on ${where}: address already in use`,
          {
            hint:
              `stop what uses it (kf ps; lsof -i :${error.port}) or pick another local port (0:${remote} = any free)` +
              // localhost is both loopbacks; IPv4 alone is a way out when only ::1 is taken
              (error.hostname === "::1" && this.spec.addresses.includes("localhost")
                ? ", or listen on IPv4 only with --address 127.0.0.1"
                : ""),
            cause: error.cause,
          },
        );
      }
      throw new LocalListenError(
        `Forward '${this.spec.name}': cannot listen on ${where}: ${(error.cause as Error).message}`,
        { hint: "use a local address of this machine, e.g. 127.0.0.1", cause: error.cause },
      );
    }
    const prewarm = new Prewarm(this.#open, {
      clock: this.#deps.clock,
      signal: this.#abort.signal,
      alongside: this.#httpPool,
    });
    const kept = new KeptUpstreams({ clock: this.#deps.clock, signal: this.#abort.signal });
    return { remote, localPort: bound.port, listeners: bound.listeners, prewarm, kept, http: false };
  }

  async #acceptLoop(port: PortRuntime, listener: Deno.TcpListener): Promise<void> {
    try {
      for await (const conn of listener) {
        conn.setNoDelay(true);
        conn.setKeepAlive(true);
        this.#serve(port, conn);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource) && !this.#abort.signal.aborted) {
        this.#fail(error as Error);
      }
    }
  }

  async #serve(port: PortRuntime, conn: Deno.TcpConn): Promise<void> {
    const startedAt = this.#deps.clock.now();
    this.#totalConnections++;
    const protocol = this.spec.protocol ?? "auto";
    const acquire = (exclude: ReadonlySet<string>, signal: AbortSignal) =>
      this.#acquire(port, exclude, signal, startedAt);
    const onPodFailed = (pod: string) => {
      port.prewarm.invalidate(pod);
      port.kept.drop(pod);
    };
    const tunnelOptions = {
      local: conn,
      counters: this.#counters,
      signal: this.#abort.signal,
      clock: this.#deps.clock,
      acquire,
      onPodFailed,
      onPingTimeout: () => this.#deps.health?.suspect("a connection's ping went unanswered"),
      // only streams with keepAlive() send anything (v4); SPDY's own pings keep the kubelet's idle timer happy
      keepAliveMs: this.#keepAliveMs,
    };
    let carrier: Tunnel | HttpConnection;
    if (protocol === "tcp") {
      carrier = new Tunnel(tunnelOptions);
    } else {
      // the first upstream opens while the first bytes arrive, so sniffing costs no round trip; on a port
      // that has carried HTTP it may be one an earlier connection left open
      const first = protocol === "auto"
        ? this.#acquire(port, new Set(), this.#abort.signal, startedAt, undefined, port.http)
        : undefined;
      first?.catch(() => {});
      const sniffed = first ? await sniffConnection(conn, first) : undefined;
      if (sniffed?.protocol === "tcp") {
        // not HTTP after all: an upstream that carried HTTP goes back, the tunnel gets a fresh one
        const fresh = first!.then((upstream) => {
          if (!upstream.reused) return upstream;
          port.kept.keep(upstream);
          return acquire(new Set(), this.#abort.signal);
        });
        carrier = new Tunnel({ ...tunnelOptions, first: fresh, firstChunk: sniffed.firstChunk });
      } else {
        // HTTP clients open connections often: from now on this port's go on auto's SPDY pool when it can
        port.http = true;
        carrier = new HttpConnection({
          local: conn,
          counters: this.#counters,
          signal: this.#abort.signal,
          clock: this.#deps.clock,
          initial: sniffed?.bytes,
          first,
          // each request waits for a pod from its own start, not from the connection's
          acquire: (exclude, signal, prefer, reuse) =>
            this.#acquire(port, exclude, signal, this.#deps.clock.now(), prefer, reuse),
          keep: (upstream) => port.kept.keep(upstream),
          choose: (exclude) => this.#choose(port.remote, exclude),
          onPodFailed,
          onAnswered: (status, pod) => {
            this.#requests++;
            if (status >= 500) this.#serverErrors++;
            this.#answeredHttp(port, pod);
          },
          onRequest: this.spec.logRequests
            ? (request) => this.#emit({ type: "request", forward: this.spec.name, request })
            : undefined,
        });
      }
    }
    this.#tunnels.add(carrier);
    this.#changed();
    const result = await carrier.run();
    this.#tunnels.delete(carrier);
    if (this.#tunnels.size === 0) this.#drained?.resolve();
    if (result.error) this.#connectionError(result.error, result.pod);
    this.#changed();
  }

  /** The pod the next HTTP request on an idle connection goes to, per the forward's balance. */
  #choose(remote: number | string, exclude: ReadonlySet<string>): string | undefined {
    if (this.spec.balance !== "round-robin") return this.#endpointNow(remote, exclude)?.pod;
    const service = this.#service();
    const pod = choosePodRoundRobin(this.#target.pods(), {
      last: this.#lastRoundRobin,
      exclude,
      usable: (p) => endpointFor(p, remote, service) !== undefined,
    });
    this.#lastRoundRobin = pod?.metadata.name;
    return pod?.metadata.name;
  }

  /**
   * A pod answered an HTTP request on this port: auto's pool opens its connections to it POOL_AFTER_MS later,
   * if the pod is still ready. Not at once: at a handover their handshakes would compete with the dials of
   * the first requests (measured: the churn handover p50 rose by 10-20 ms when the pool started at the first
   * v4 dial, and further on a busy machine when it started at the first answer).
   */
  #answeredHttp(port: PortRuntime, podName: string | undefined): void {
    const pool = this.#httpPool;
    // every HTTP answer lands here: a pod already handled since the target last changed costs no lookup
    if (!pool || podName === undefined || podName === port.answeredPod) return;
    port.answeredPod = podName;
    const seen = `${podName} ${port.remote}`;
    if (this.#answeredPods.has(seen)) return;
    this.#answeredPods.add(seen);
    const pod = this.#target.pods().find((p) => p.metadata.name === podName);
    const endpoint = pod ? endpointFor(pod, port.remote, this.#service()) : undefined;
    if (!endpoint || pool.serves(endpoint) || this.#poolPending.has(endpoint.uid)) return;
    this.#poolPending.add(endpoint.uid);
    this.#deps.clock.sleep(POOL_AFTER_MS, this.#abort.signal).then(() => {
      this.#poolPending.delete(endpoint.uid);
      if (this.#isReady(endpoint.pod)) pool.served(endpoint);
    }, () => {});
  }

  /** An upstream for a new connection: the prewarmed socket when it fits, else a new one; waits (bounded) for a pod. */
  async #acquire(
    port: PortRuntime,
    exclude: ReadonlySet<string>,
    signal: AbortSignal,
    startedAt: number,
    prefer?: string,
    reuse = false,
  ): Promise<Upstream> {
    const deadline = startedAt + this.spec.podWaitTimeoutMs;
    const skip = new Set(exclude);
    const clock = this.#deps.clock;
    const backoff = new Backoff({ clock, initialMs: DIAL_RETRY_INITIAL_MS, maxMs: DIAL_RETRY_MAX_MS });
    while (true) {
      const endpoint = await this.#waitForEndpoint(port.remote, skip, signal, deadline, prefer);
      const kept = reuse ? port.kept.take(endpoint) : undefined;
      if (kept) return kept;
      // the pod may stop being ready while we dial it (a rollout, a force-delete): give up on it at once
      // and pick again, instead of finding out from the kubelet after a full WebSocket handshake
      const dial = new AbortController();
      const onStop = () => abortRoutine(dial);
      signal.addEventListener("abort", onStop, { once: true });
      const unsubscribe = this.#target.subscribe(() => {
        if (!this.#isReady(endpoint.pod)) abortRoutine(dial);
      });
      try {
        const pool = port.http ? this.#httpPool : undefined;
        if (pool?.hasIdle(endpoint)) {
          const stream = await pool.open(endpoint, dial.signal);
          if (!this.#httpPoolUsed) {
            this.#httpPoolUsed = true;
            this.#changed();
          }
          return { stream, endpoint, early: [] };
        }
        const warm = await port.prewarm.take(endpoint);
        if (warm) return warm;
        if (dial.signal.aborted) throw dial.signal.reason;
        const release = await this.#dialSlots.take(dial.signal);
        try {
          return { stream: await this.#open(endpoint, dial.signal), endpoint, early: [] };
        } finally {
          release();
        }
      } catch (error) {
        if (signal.aborted) throw error;
        const failure = classifyDialFailure(error, dial.signal.aborted);
        // the pod vanished between the pick and the upgrade: try another one at once
        if (failure === "pod-gone") {
          skip.add(endpoint.pod);
          continue;
        }
        // a definitive answer (403, bad port, bad credentials), or the wait budget is spent
        const left = deadline - clock.now();
        if (failure === "final" || left <= 0) throw error;
        // the API server or the path to it is in trouble: wait like a connection waiting for a pod
        await clock.sleep(Math.min(left, backoff.next()), signal);
      } finally {
        unsubscribe();
        signal.removeEventListener("abort", onStop);
      }
    }
  }

  /** The Service whose port names and numbers map to pod ports (service targets only). */
  #service() {
    return this.spec.target.kind === "service" ? this.#target.service : undefined;
  }

  #isReady(pod: string): boolean {
    const found = this.#target.pods().find((p) => p.metadata.name === pod);
    return found !== undefined && isPodReady(found);
  }

  #endpointNow(remote: number | string, exclude: ReadonlySet<string>, prefer?: string): Endpoint | undefined {
    const plain = exclude.size === 0 && prefer === undefined;
    if (plain && this.#pickedEndpoints.has(remote)) return this.#pickedEndpoints.get(remote);
    const endpoint = this.#pickEndpoint(remote, exclude, prefer);
    if (plain) this.#pickedEndpoints.set(remote, endpoint);
    return endpoint;
  }

  #pickEndpoint(
    remote: number | string,
    exclude: ReadonlySet<string>,
    prefer?: string,
  ): Endpoint | undefined {
    const service = this.#service();
    const usable = (pod: Pod) => endpointFor(pod, remote, service) !== undefined;
    const pods = this.#target.pods();
    // a round-robin request names its pod; sticky ones get the forward's current pod
    const preferred = prefer === undefined
      ? undefined
      : choosePod(pods, { current: prefer, exclude, usable });
    const pod = preferred && preferred.metadata.name === prefer
      ? preferred
      : choosePod(pods, { current: this.#pod, exclude, usable });
    return pod ? endpointFor(pod, remote, service) : undefined;
  }

  /** Endpoints of the pods that may be picked after `chosen` (see standbyPods). */
  #standbyFor(remote: number | string, chosen: string | undefined): Endpoint[] {
    const service = this.#service();
    return standbyPods(this.#target.pods(), chosen, STANDBY_PODS)
      .map((pod) => endpointFor(pod, remote, service))
      .filter((endpoint) => endpoint !== undefined);
  }

  #waitForEndpoint(
    remote: number | string,
    exclude: ReadonlySet<string>,
    signal: AbortSignal,
    deadline: number,
    prefer?: string,
  ): Promise<Endpoint> {
    const now = this.#endpointNow(remote, exclude, prefer);
    if (now) return Promise.resolve(now);
    this.#holdSpare();
    return new Promise<Endpoint>((resolve, reject) => {
      const timer = new AbortController();
      const done = () => {
        unsubscribe();
        abortRoutine(timer);
        signal.removeEventListener("abort", onAbort);
      };
      const unsubscribe = this.#target.subscribe(() => {
        const endpoint = this.#endpointNow(remote, exclude);
        if (endpoint) {
          done();
          resolve(endpoint);
        }
      });
      const onAbort = () => {
        done();
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#deps.clock.sleep(Math.max(0, deadline - this.#deps.clock.now()), timer.signal).then(() => {
        done();
        const why = this.#target.problem ?? `no ready pod for ${formatTarget(this.spec.target)}`;
        reject(
          new NoReadyPodError(`Forward '${this.spec.name}': ${why} after ${this.spec.podWaitTimeoutMs} ms`, {
            hint: "check the pods (kubectl get pods) or raise podWaitTimeout",
          }),
        );
      }, () => {});
    });
  }

  /** Re-picks the pod, re-warms, cuts connections to deleted pods, and derives the state. */
  #onTargetChange(): void {
    this.#answeredPods.clear();
    for (const port of this.#ports) port.answeredPod = undefined;
    this.#pickedEndpoints.clear();
    if (this.#abort.signal.aborted || this.#state === "failed") return;
    const first = this.#ports[0];
    const endpoint = first ? this.#endpointNow(first.remote, new Set()) : undefined;
    this.#pod = endpoint?.pod;
    // picked with the previous pod as the sticky one
    this.#pickedEndpoints.clear();
    if (endpoint) this.#releaseSpare();
    else if (this.#target.podStore?.synced) this.#holdSpare();
    // now, before the connections waiting for a pod hear of it (they listen after this): they take the warm
    // socket while it opens instead of dialling beside it, so a handover costs one dial, not two
    for (const port of this.#ports) {
      const picked = port === first ? endpoint : this.#endpointNow(port.remote, new Set());
      port.prewarm.setEndpoint(picked, this.#standbyFor(port.remote, picked?.pod));
    }
    const present = new Set(this.#target.pods().map((p) => p.metadata.name));
    if (this.#target.podStore?.synced) {
      for (const port of this.#ports) {
        for (const pod of port.kept.pods()) if (!present.has(pod)) port.kept.drop(pod);
      }
      // a deleted pod's connections are dead: close them now instead of waiting for TCP to notice
      for (const tunnel of this.#tunnels) {
        for (const pod of tunnel.pods()) if (!present.has(pod)) tunnel.podDeleted(pod);
      }
    }
    if (endpoint) this.#hadPod = true;
    this.#updateState();
  }

  /** Has the client keep a connection to the API server ready for the next dial (to a pod not there yet). */
  #holdSpare(): void {
    if (this.#abort.signal.aborted || (this.#spareHold && !this.#spareHold.signal.aborted)) return;
    const hold = new AbortController();
    this.#spareHold = hold;
    const held = AbortSignal.any([hold.signal, this.#abort.signal]);
    this.#deps.client.holdSpareConnection(held);
    this.#deps.clock.sleep(SPARE_HOLD_MS, held).then(() => abortRoutine(hold), () => {});
  }

  #releaseSpare(): void {
    if (this.#spareHold) abortRoutine(this.#spareHold);
    this.#spareHold = undefined;
  }

  /** Derives the state from the pod pick, the watch, the cluster's reachability and the network. */
  #updateState(): void {
    if (this.#abort.signal.aborted || this.#state === "failed") return;
    const store = this.#target.podStore;
    const watchFailing = store?.status.state === "degraded";
    // a failing watch is a sign of trouble on the path too: let the probe say whether the server is gone
    if (watchFailing) this.#deps.health?.suspect(store.status.lastError?.message ?? "the pod watch failed");
    const unreachable = this.#deps.health?.problem;
    let state: ForwardState;
    if (this.#settling) state = "settling";
    else if (unreachable || watchFailing) state = "degraded";
    else if (this.#pod) state = "ready";
    else if (this.#target.problemError) state = "degraded";
    else if (!store?.synced && !this.#target.problem) state = "starting";
    else state = this.#hadPod ? "reconnecting" : "waiting-for-pod";
    const problem = unreachable ??
      (watchFailing ? store.status.lastError?.message : this.#target.problemError?.message);
    if (problem) this.#recordError(problem);
    else if (this.#target.problem && !this.#pod) this.#recordError(this.#target.problem);
    this.#setState(state);
  }

  #recordError(message: string): void {
    if (message === this.#lastError) return;
    this.#lastError = message;
    this.#lastErrorAt = Date.now();
  }

  #connectionError(error: Error, pod?: string): void {
    this.#recordError(error.message);
    this.#emit({ type: "connection-error", forward: this.spec.name, pod, message: error.message });
  }

  #fail(error: Error): void {
    this.#recordError(error.message);
    this.#setState("failed");
  }

  #setState(state: ForwardState): void {
    this.#state = state;
    this.#changed();
  }

  /** What the last status event said, apart from its counters; and its counters. */
  #lastEmitted = "";
  #lastCounters = "";
  #countersPending = false;

  /**
   * A status event at once when the state, pod, transport, error or listeners changed; one that only moves
   * counters (connections, bytes, requests) waits up to COUNTER_EVENTS_EVERY_MS and carries all the moves
   * since. Counters change twice per connection: a client opening hundreds per second got as many events
   * (NDJSON lines, state file wake-ups), and building them was a few per cent of kf's CPU.
   */
  #changed(): void {
    const status = this.status();
    const key = statusKey(status);
    if (key !== this.#lastEmitted) {
      this.#lastEmitted = key;
      this.#lastCounters = countersKey(status);
      this.#emit({ type: "status", status });
      return;
    }
    if (this.#countersPending || countersKey(status) === this.#lastCounters) return;
    this.#countersPending = true;
    this.#deps.clock.sleep(COUNTER_EVENTS_EVERY_MS, this.#abort.signal).then(() => {
      this.#countersPending = false;
      const now = this.status();
      const counters = countersKey(now);
      if (statusKey(now) !== this.#lastEmitted || counters === this.#lastCounters) return;
      this.#lastCounters = counters;
      this.#emit({ type: "status", status: now });
    }, () => {
      this.#countersPending = false; // stopped: the final state change is sent at once
    });
  }

  #emit(event: ForwardEvent): void {
    for (const listener of [...this.#listeners]) listener(event);
  }
}

/** Counter-only status events are sent at most this often (see Forwarder.#changed). */
const COUNTER_EVENTS_EVERY_MS = 250;

/** The parts of a status a listener must hear of at once. */
function statusKey(status: ForwardStatus): string {
  return JSON.stringify([
    status.state,
    status.pod,
    status.transport,
    status.lastError,
    status.lastErrorAt,
    status.listeners,
  ]);
}

function countersKey(status: ForwardStatus): string {
  return `${status.openConnections} ${status.totalConnections} ${status.bytesIn} ${status.bytesOut} ${status.requests} ${status.serverErrors}`;
}
