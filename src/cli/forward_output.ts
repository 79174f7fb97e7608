/** How a running session shows itself: a live table on a TTY, a line per change otherwise, or NDJSON events. */

import type { ForwardStatus } from "../forward/status.ts";
import type { SessionEvent } from "../forward/session.ts";
import type { RequestLogEntry } from "../forward/http/connection.ts";
import { formatBytes, formatListeners, hostPort } from "./format.ts";

export { hostPort };

/** "api 127.0.0.1:8080 -> svc/api:80 ready pod=api-7f9c" */
export function formatForwardLine(status: ForwardStatus): string {
  const ports = formatListeners(status.listeners, true);
  let line = `${status.name} ${ports} ${status.target} ${status.state}`;
  if (status.pod) line += ` pod=${status.pod}`;
  if (status.state !== "ready" && status.lastError) line += ` (${status.lastError})`;
  return line;
}

/** One NDJSON line per event, for scripts. */
export function formatEventJson(event: SessionEvent): string {
  const time = new Date().toISOString();
  switch (event.type) {
    case "status":
      return JSON.stringify({ time, event: "status", ...event.status });
    case "connection-error":
      return JSON.stringify({
        time,
        event: "connection-error",
        forward: event.forward,
        pod: event.pod,
        error: event.message,
      });
    case "failed":
      return JSON.stringify({ time, event: "failed", forward: event.forward, error: event.error.message });
    case "request":
      return JSON.stringify({ time, event: "request", forward: event.forward, ...event.request });
  }
}

/** "api GET /users 200 pod=api-7f9c 3.2ms out=78B in=1.2KiB": one finished HTTP request; never header values. */
export function formatRequestLine(forward: string, request: RequestLogEntry): string {
  const pod = request.pod ? ` pod=${request.pod}` : "";
  return `${forward} ${request.method} ${request.path} ${request.status}${pod} ${request.durationMs}ms ` +
    `out=${formatBytes(request.bytesOut)} in=${formatBytes(request.bytesIn)}`;
}

const HEADERS = [
  "NAME",
  "LOCAL",
  "TARGET",
  "POD",
  "STATE",
  "CONN",
  "IN",
  "OUT",
  "REQ/S",
  "5XX",
  "LAST ERROR",
];

/** The table redrawn in place on a terminal; `rates` holds HTTP requests per second by forward name. */
export function renderForwardTable(
  statuses: ForwardStatus[],
  width = 160,
  rates: ReadonlyMap<string, number> = new Map(),
): string {
  const rows = statuses.map((s) => [
    s.name,
    formatListeners(s.listeners, true),
    `${s.target}${s.namespace ? ` (${s.namespace})` : ""}`,
    s.pod ?? "-",
    s.state,
    `${s.openConnections}/${s.totalConnections}`,
    formatBytes(s.bytesIn),
    formatBytes(s.bytesOut),
    s.requests ? formatRate(rates.get(s.name) ?? 0) : "-",
    s.requests ? String(s.serverErrors ?? 0) : "-",
    s.lastError ?? "",
  ]);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const lines = [HEADERS, ...rows].map((cells) =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]))).join("  ").slice(
      0,
      width,
    )
  );
  return lines.join("\n") + "\n";
}

function formatRate(perSecond: number): string {
  return perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
}

/** Redraws the table at most a few times a second, replacing the previous drawing. */
export class LiveTable {
  #lines = 0;
  /** Per forward: the request count and time of the last drawing, for requests per second. */
  readonly #lastCounts = new Map<string, { requests: number; at: number }>();
  readonly #rates = new Map<string, number>();
  readonly #write: (text: string) => void;

  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  draw(statuses: ForwardStatus[], footer: string): void {
    let width = Number(Deno.env.get("COLUMNS")) || 160;
    try {
      // a pseudo-terminal without a size reports 0 columns
      width = Deno.consoleSize().columns || width;
    } catch {
      // not a terminal after all
    }
    const now = performance.now();
    for (const s of statuses) {
      const before = this.#lastCounts.get(s.name);
      const requests = s.requests ?? 0;
      if (before && now > before.at) {
        this.#rates.set(s.name, ((requests - before.requests) * 1000) / (now - before.at));
      }
      this.#lastCounts.set(s.name, { requests, at: now });
    }
    const text = renderForwardTable(statuses, width, this.#rates) + footer + "\n";
    // move up over the previous drawing and clear to the end of the screen
    const clear = this.#lines > 0 ? `\x1b[${this.#lines}F\x1b[J` : "";
    this.#lines = text.split("\n").length - 1;
    this.#write(clear + text);
  }
}
