/** One authenticated connection point to a cluster: JSON GETs, streamed watches and port-forward WebSockets. */

import * as https from "node:https";
import { concatBytes } from "../bytes.ts";
import { expandHome } from "../paths.ts";
import * as http from "node:http";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { Credentials, loadKubeconfig } from "./kubeconfig.ts";
import type WebSocket from "ws";
import type { Socket } from "node:net";
import { connectApiServer, type GatedSocket } from "./conn_socket.ts";
import {
  NativeTlsUnavailableError,
  NativeWebSocket,
  type NativeWebSocketOptions,
  type OpenConnection,
  openConnection,
  UpgradeRefusedError,
} from "./native_websocket.ts";
import { NativeUpgradedSocket } from "./native_upgrade.ts";
import { SocketOptions } from "./socket_options.ts";
import { SpareConnections } from "./spare_connections.ts";
import { ApiError, ApiUnreachableError, KubeconfigError, type RequestPurpose } from "./errors.ts";

export interface KubeClientOptions {
  /** Path(s) of kubeconfig files; default: $KUBECONFIG, else ~/.kube/config. */
  kubeconfig?: string;
  /** Context name; default: the kubeconfig's current-context. */
  context?: string;
}

export interface RequestOptions {
  query?: Record<string, string | string[] | undefined>;
  signal?: AbortSignal;
  /** Named in errors so a 403 says which RBAC permission is missing. */
  purpose?: RequestPurpose;
  /** Gives up when no response headers arrive in time. @default 30000 */
  timeoutMs?: number;
  /**
   * Reuse a pooled keep-alive connection. A health probe asks for a new one: a pooled socket can be dead
   * (the server restarted) while the server itself answers, or look alive over a path that died.
   * @default true
   */
  pooled?: boolean;
}

/** A subprotocol ws sends itself: an RFC 7230 token (ws's own check). */
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;

/** A (kubeconfig, context) pair made usable; share one per pair across forwards. */

export class KubeClient {
  readonly contextName: string;
  /** The context's namespace, or "default". */
  readonly defaultNamespace: string;
  readonly server: string;
  readonly #credentials: Credentials;
  // keep-alive pool: LISTs and GETs reuse TLS connections instead of a handshake each
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 64 });
  /**
   * libc's setsockopt for client-certificate WebSockets on native TLS; null: not loaded yet; undefined: not
   * there, or native TLS failed for this certificate in a way that would repeat (node:tls from then on).
   */
  #socketOptions: SocketOptions | undefined | null = null;
  /** Connections opened ahead for WebSocket upgrades (see holdSpareConnection); made on first use. */
  #spares?: SpareConnections;

  private constructor(contextName: string, namespace: string, server: string, credentials: Credentials) {
    this.contextName = contextName;
    this.defaultNamespace = namespace;
    this.server = server;
    this.#credentials = credentials;
  }

  /** Loads the kubeconfig and selects the context; errors name what does exist. */
  static load(options: KubeClientOptions = {}): KubeClient {
    const files = kubeconfigFiles(options.kubeconfig);
    if (files.length === 0) {
      throw new KubeconfigError(
        "No kubeconfig found: $KUBECONFIG is unset and ~/.kube/config does not exist",
        {
          hint: "pass --kubeconfig PATH or set KUBECONFIG",
        },
      );
    }
    const config = loadKubeconfig(files);
    const contexts = config.contexts.map((c) => c.name);
    const wanted = options.context ?? config.currentContext;
    if (!wanted) {
      throw new KubeconfigError(`Kubeconfig ${files.join(":")} has no current-context`, {
        hint: contexts.length ? `pass --context; contexts: ${contexts.join(", ")}` : "add a context to it",
      });
    }
    const context = config.contexts.find((c) => c.name === wanted);
    if (!context) {
      throw new KubeconfigError(`Context '${wanted}' not found in ${files.join(":")}`, {
        hint: contexts.length ? `contexts: ${contexts.join(", ")}` : "the kubeconfig defines no contexts",
      });
    }
    const cluster = config.clusters.find((c) => c.name === context.cluster);
    if (!cluster) {
      throw new KubeconfigError(
        `Context '${wanted}' names cluster '${context.cluster}', which is not defined`,
        {
          hint: `clusters: ${config.clusters.map((c) => c.name).join(", ") || "none"}`,
        },
      );
    }
    const user = config.users.find((u) => u.name === context.user);
    if (context.user && !user) {
      throw new KubeconfigError(`Context '${wanted}' names user '${context.user}', which is not defined`, {
        hint: `users: ${config.users.map((u) => u.name).join(", ") || "none"}`,
      });
    }
    return new KubeClient(
      wanted,
      context.namespace || "default",
      cluster.server.replace(/\/+$/, ""),
      new Credentials(config, wanted, cluster, user),
    );
  }

  /** An API error for a refused request; a 401 also makes the credentials fetch again next time. */
  #refused(status: number, body: string, purpose?: RequestPurpose): ApiError {
    if (status === 401) this.#credentials.rejected();
    return apiErrorFrom(status, body, purpose);
  }

  /** Request options with fresh credentials (exec plugins and token files refresh here). */
  async httpsOptions(): Promise<https.RequestOptions> {
    const options: https.RequestOptions = {};
    try {
      await this.#credentials.apply(options);
    } catch (error) {
      throw new KubeconfigError(
        `Cannot get credentials for context '${this.contextName}': ${(error as Error).message}`,
        { hint: "check the user's auth settings (exec plugin, token, certificates)", cause: error },
      );
    }
    return options;
  }

  /**
   * SocketOptions for native sockets (TCP_NODELAY under a client certificate, the kernel's keepalive), or
   * undefined where FFI is not there: certificates then use node:tls.
   */
  #nativeSocketOptions(): SocketOptions | undefined {
    if (this.#socketOptions === null) this.#socketOptions = SocketOptions.open();
    return this.#socketOptions;
  }

  url(apiPath: string, query?: RequestOptions["query"]): URL {
    const url = new URL(this.server + apiPath);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
    }
    return url;
  }

  /** GET a JSON document; non-2xx answers become ApiError with the status. */
  async getJson<T>(apiPath: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.#open(apiPath, options);
    const body = await readBody(response);
    try {
      return JSON.parse(body) as T;
    } catch (error) {
      throw new ApiError(response.statusCode ?? 0, "the answer is not JSON", { cause: error });
    }
  }

  /** GET a short text document (a health endpoint such as /readyz); non-2xx answers become ApiError. */
  async getText(apiPath: string, options: RequestOptions = {}): Promise<string> {
    return await readBody(await this.#open(apiPath, options));
  }

  /** GET a stream of JSON lines (a watch); ends when the server closes it or the signal aborts. */
  async *streamJsonLines(apiPath: string, options: RequestOptions = {}): AsyncGenerator<unknown> {
    const response = await this.#open(apiPath, options);
    const decoder = new TextDecoder();
    let pending = "";
    const onAbort = () => response.destroy();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const chunk of response) {
        pending += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line) yield JSON.parse(line);
        }
      }
    } catch (error) {
      if (options.signal?.aborted) return;
      throw this.#networkError(error);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      response.destroy();
    }
  }

  /** Opens a WebSocket on an API path (port-forward); resolves once the upgrade succeeded. */
  async openWebSocket(
    apiPath: string,
    options: RequestOptions & { protocols: string[] },
  ): Promise<WebSocket> {
    const tls = await this.httpsOptions();
    const url = this.url(apiPath, options.query);
    url.protocol = url.protocol === "http:" ? "ws:" : "wss:";
    const native = nativeTlsOptions(tls, () => this.#nativeSocketOptions());
    if (native) {
      try {
        const connect = (connection?: OpenConnection) =>
          NativeWebSocket.connect(url, {
            ...native,
            protocols: options.protocols,
            signal: options.signal,
            handshakeTimeoutMs: options.timeoutMs,
            connection,
          });
        const spare = await this.#spares?.take(clientIdentity(native));
        let ws: NativeWebSocket;
        try {
          ws = await connect(spare);
        } catch (error) {
          // the server may have closed a spare while it waited: a failure that is no answer and no timeout
          // (a silent path would time out again) means a fresh dial
          const timedOut = error instanceof DOMException && error.name === "TimeoutError";
          if (!spare || options.signal?.aborted || error instanceof UpgradeRefusedError || timedOut) {
            throw error;
          }
          ws = await connect();
        }
        // holders learn of failures from "close"; an unheard error must never crash the process
        ws.on("error", () => {});
        return ws as unknown as WebSocket;
      } catch (error) {
        // a certificate native TLS cannot carry goes over node:tls below
        this.#nativeDialFailed(error, options);
      }
    }
    let raw: GatedSocket | undefined;
    // ws accepts only RFC 7230 tokens as subprotocols, but the SPDY tunnel's `SPDY/3.1+portforward.k8s.io`
    // holds a '/' (Go servers and kubectl do not mind): such lists go out as a plain header, and the
    // server's pick is checked below, in "upgrade", before ws would reject it as unrequested
    const untokened = options.protocols.some((p) => !SUBPROTOCOL_TOKEN.test(p));
    const headers = { ...tls.headers as Record<string, string> | undefined };
    if (untokened) headers["Sec-WebSocket-Protocol"] = options.protocols.join(", ");
    // ws only for this fallback: loading it (and its Node imports) costs every forward ~3 MB otherwise
    const { default: NodeWebSocket } = await import("ws");
    const socket = new NodeWebSocket(url, untokened ? [] : options.protocols, {
      createConnection: () => {
        const connection = connectApiServer(url, tls);
        raw = connection.raw;
        return connection.socket as Socket;
      },
      // Masking protects browsers' proxies from script-made frames; kf is no browser, and an all-zero
      // mask lets ws skip XOR-ing every uploaded byte
      generateMask: (mask: Uint8Array) => mask.fill(0),
      headers,
      auth: tls.auth ?? undefined,
      perMessageDeflate: false,
      handshakeTimeout: options.timeoutMs ?? 10_000,
      maxPayload: 64 * 1024 * 1024,
    });
    // pause() must stop reading below TLS too, or a slow local reader lets the download pile up in memory
    const pause = socket.pause.bind(socket);
    const resume = socket.resume.bind(socket);
    socket.pause = () => {
      pause();
      raw?.closeGate();
    };
    socket.resume = () => {
      raw?.openGate();
      resume();
    };
    // ws emits "error" also after we stopped listening (terminate during the handshake, late resets);
    // holders learn of failures from "close", so an unheard error must never crash the process
    socket.on("error", () => {});
    return await new Promise<WebSocket>((resolve, reject) => {
      const onAbort = () => socket.terminate();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      // ws's handshakeTimeout rides on socket timeouts, which our own socket does not emit: without this
      // timer a dial over a silently dropped path would wait until the path came back
      const handshakeMs = options.timeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new ApiUnreachableError(
            this.server,
            "ETIMEDOUT",
            `no answer to the upgrade within ${handshakeMs} ms`,
          ),
        );
        socket.terminate();
      }, handshakeMs);
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        socket.off("open", onOpen);
        socket.off("error", onError);
        socket.off("unexpected-response", onUnexpected);
      };
      const onOpen = () => {
        cleanup();
        resolve(socket);
      };
      const onError = (error: Error) => {
        cleanup();
        reject(options.signal?.aborted ? options.signal.reason : this.#networkError(error));
      };
      const onUnexpected = (_request: http.ClientRequest, response: http.IncomingMessage) => {
        cleanup();
        readBody(response).then(
          (body) => reject(this.#refused(response.statusCode ?? 0, body, options.purpose)),
          (error) => reject(this.#networkError(error)),
        );
        socket.terminate();
      };
      const onUpgrade = (response: http.IncomingMessage) => {
        const picked = response.headers["sec-websocket-protocol"];
        delete response.headers["sec-websocket-protocol"];
        if (picked === undefined || !options.protocols.includes(picked)) {
          cleanup();
          socket.terminate();
          reject(
            new Error(
              picked === undefined
                ? `Server sent no subprotocol (asked for ${options.protocols.join(", ")})`
                : `Server sent an invalid subprotocol '${picked}'`,
            ),
          );
        }
      };
      socket.on("open", onOpen);
      socket.on("error", onError);
      socket.on("unexpected-response", onUnexpected);
      if (untokened) socket.once("upgrade", onUpgrade);
    });
  }

  /**
   * Sends an HTTP/1.1 upgrade request on an API path (the legacy SPDY/3.1 port-forward is a POST) over its
   * own TCP_NODELAY connection and resolves with the raw upgraded socket after a 101; any other answer
   * becomes an ApiError carrying the Status message. The socket's pause() also stops reading the TCP
   * connection below TLS (as for openWebSocket), so a consumer that pauses really stops the server.
   */
  async upgrade(
    apiPath: string,
    options: RequestOptions & { method?: string; headers?: Record<string, string> } = {},
  ): Promise<Socket> {
    options.signal?.throwIfAborted();
    const tls = await this.httpsOptions();
    const url = this.url(apiPath, options.query);
    const native = nativeTlsOptions(tls, () => this.#nativeSocketOptions());
    if (native) {
      try {
        const socket = await NativeUpgradedSocket.connect(url, {
          ...native,
          method: options.method ?? "GET",
          headers: { ...native.headers, ...options.headers },
          signal: options.signal,
          timeoutMs: options.timeoutMs,
        });
        // holders learn of failures from "close"; an unheard error must never crash the process
        socket.on("error", () => {});
        return socket as unknown as Socket;
      } catch (error) {
        // a certificate native TLS cannot carry goes over node:tls below
        this.#nativeDialFailed(error, options);
      }
    }
    let raw: GatedSocket | undefined;
    return await new Promise<Socket>((resolve, reject) => {
      const request = (url.protocol === "http:" ? http : https).request(url, {
        ...tls,
        method: options.method ?? "GET",
        headers: { ...tls.headers, ...options.headers },
        // no agent: with one, node:http would ignore createConnection (and pool the socket)
        createConnection: () => {
          const connection = connectApiServer(url, tls);
          raw = connection.raw;
          return connection.socket as Socket;
        },
      });
      const timer = setTimeout(() => {
        request.destroy(Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" }));
      }, options.timeoutMs ?? 30_000);
      const onAbort = () => request.destroy(options.signal?.reason);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const settled = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      request.once("upgrade", (_response: http.IncomingMessage, socket: Socket, head: Uint8Array) => {
        settled();
        if (options.signal?.aborted) {
          socket.destroy();
          return reject(options.signal.reason);
        }
        const pause = socket.pause.bind(socket);
        const resume = socket.resume.bind(socket);
        socket.pause = () => {
          pause();
          raw?.closeGate();
          return socket;
        };
        socket.resume = () => {
          raw?.openGate();
          resume();
          return socket;
        };
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      request.once("response", (response: http.IncomingMessage) => {
        settled();
        readBody(response).then(
          (body) => reject(this.#refused(response.statusCode ?? 0, body, options.purpose)),
          (error) => reject(this.#networkError(error)),
        ).finally(() => request.destroy());
      });
      request.once("error", (error) => {
        settled();
        reject(options.signal?.aborted ? options.signal.reason : this.#networkError(error));
      });
      request.end();
    });
  }

  /**
   * Keeps a connection to the API server open and its TLS handshake done until `signal` aborts, for the next
   * WebSocket upgrade (a port-forward dial) to use: a forward with no ready pod holds one, so its first dial
   * to the replacement costs the upgrade alone. Only where WebSockets use Deno's native TLS.
   */
  holdSpareConnection(signal: AbortSignal): void {
    this.#spares ??= new SpareConnections(async (stop) => {
      const native = nativeTlsOptions(await this.httpsOptions(), () => this.#nativeSocketOptions());
      if (!native) return undefined;
      try {
        return {
          opened: await openConnection(this.url("/"), native, stop),
          identity: clientIdentity(native),
        };
      } catch (error) {
        // upgrades go over node:tls for this certificate: nothing a native spare could serve
        if (error instanceof NativeTlsUnavailableError) return undefined;
        throw error;
      }
    });
    this.#spares.hold(signal);
  }

  /** Closes pooled connections; call when the session ends. */
  close(): void {
    this.#agent.destroy();
    this.#spares?.close();
  }

  async #open(apiPath: string, options: RequestOptions): Promise<http.IncomingMessage> {
    const tls = await this.httpsOptions();
    const url = this.url(apiPath, options.query);
    const transport = url.protocol === "http:" ? http : https;
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const request = transport.request(url, {
        ...tls,
        method: "GET",
        // agent false: a connection of its own, closed after the answer
        agent: options.pooled === false ? false : url.protocol === "http:" ? undefined : this.#agent,
        headers: { ...tls.headers, accept: "application/json" },
        signal: options.signal,
      }, resolve);
      const timer = setTimeout(() => {
        request.destroy(Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" }));
      }, options.timeoutMs ?? 30_000);
      request.once("response", () => clearTimeout(timer));
      request.once("error", (error) => {
        clearTimeout(timer);
        reject(options.signal?.aborted ? options.signal.reason : this.#networkError(error));
      });
      request.end();
    });
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      throw this.#refused(status, await readBody(response), options.purpose);
    }
    return response;
  }

  /**
   * A native dial failed: an answer (refused upgrade), a cancel or a network failure is thrown as such; a
   * certificate native TLS cannot carry returns, for the caller to go on over node:tls.
   */
  #nativeDialFailed(error: unknown, options: RequestOptions): void {
    if (options.signal?.aborted) throw options.signal.reason;
    if (error instanceof UpgradeRefusedError) throw this.#refused(error.status, error.body, options.purpose);
    if (!(error instanceof NativeTlsUnavailableError)) throw this.#networkError(error);
    if (error.lasting) {
      this.#socketOptions?.close();
      this.#socketOptions = undefined;
    }
  }

  #networkError(error: unknown): Error {
    if (error instanceof ApiError || error instanceof ApiUnreachableError) return error;
    const code = (error as { code?: string }).code;
    return new ApiUnreachableError(this.server, code, (error as Error).message ?? String(error), error);
  }
}

/** Builds an ApiError from a response body that is usually a Kubernetes Status object. */
export function apiErrorFrom(status: number, body: string, purpose?: RequestPurpose): ApiError {
  let detail = body.trim().slice(0, 300) || http.STATUS_CODES[status] || "error";
  let reason: string | undefined;
  try {
    const parsed = JSON.parse(body) as { message?: string; reason?: string };
    if (parsed.message) detail = parsed.message;
    reason = parsed.reason;
  } catch {
    // not a Status object: keep the raw text
  }
  return new ApiError(status, detail, { reason, purpose });
}

function readBody(response: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    response.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    response.once("end", () => resolve(new TextDecoder().decode(concatBytes(chunks))));
    response.once("error", reject);
  });
}

/** kubeconfig files in merge order: the flag, else $KUBECONFIG (path-list), else ~/.kube/config. */
export function kubeconfigFiles(explicit?: string): string[] {
  const list = explicit ?? process.env.KUBECONFIG ?? "";
  const files = list.split(path.delimiter).filter(Boolean).map((file) => expandHome(file));
  if (files.length > 0) return files;
  const fallback = path.join(os.homedir(), ".kube", "config");
  return fs.existsSync(fallback) ? [fallback] : [];
}

/** What a connection carries of the client's identity: a spare serves only dials with the same one. */
function clientIdentity(native: Pick<NativeWebSocketOptions, "clientCertificate">): string {
  return native.clientCertificate?.cert ?? "";
}

/**
 * Settings for Deno's native TLS when the connection needs nothing it lacks: verification on, and for a
 * client certificate (PEM, not PKCS#12) the means to set TCP_NODELAY on its socket (socketOptions).
 * Undefined means: use node:tls (src/kube/conn_socket.ts). KF_WEBSOCKET_TLS=node forces node:tls (for
 * comparisons and as an escape hatch).
 */
const FORCE_NODE_TLS = Deno.env.get("KF_WEBSOCKET_TLS") === "node";

function nativeTlsOptions(
  tls: https.RequestOptions,
  socketOptions: () => SocketOptions | undefined,
):
  | Pick<NativeWebSocketOptions, "caCerts" | "headers" | "clientCertificate" | "socketOptions" | "serverName">
  | undefined {
  if (FORCE_NODE_TLS) return undefined;
  if (tls.pfx || tls.passphrase || tls.rejectUnauthorized === false) return undefined;
  const pem = (value: unknown): string[] =>
    Array.isArray(value)
      ? value.flatMap(pem)
      : value === undefined || value === null
      ? []
      : [typeof value === "string" ? value : new TextDecoder().decode(value as Uint8Array)];
  let clientCertificate: { cert: string; key: string } | undefined;
  // the kernel's keepalive on every native socket; a certificate cannot do without (TCP_NODELAY)
  const tuner = socketOptions();
  if (tls.cert || tls.key) {
    const [cert, key] = [pem(tls.cert), pem(tls.key)];
    // one certificate chain and one key, what kubeconfigs hold; Deno.connectTls verifies the host it dials
    if (cert.length !== 1 || key.length !== 1 || tls.servername) return undefined;
    if (!tuner) return undefined;
    clientCertificate = { cert: cert[0], key: key[0] };
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(tls.headers ?? {})) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  if (tls.auth) headers.Authorization = `Basic ${btoa(tls.auth)}`;
  const caCerts = pem(tls.ca);
  return {
    caCerts: caCerts.length ? caCerts : undefined,
    headers,
    clientCertificate,
    socketOptions: tuner,
    serverName: tls.servername || undefined,
  };
}
