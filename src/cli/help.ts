/** Help text pieces: commander wraps descriptions at the terminal width, so they are plain paragraphs. */

/** Paragraphs of a description, each one line: commander wraps them at the terminal width. */
export function paragraphs(...texts: string[]): string {
  return texts.join("\n\n");
}

/**
 * An "Examples:" block, kubectl style (a comment line, then the command), printed after the options.
 * Commands stay short enough for an 80-column terminal, so nothing here needs wrapping.
 */
export function examples(items: [what: string, command: string][]): string {
  return "\nExamples:\n" + items.map(([what, command]) => `  # ${what}\n  ${command}\n`).join("\n");
}

/** Help of the per-forward options that `kf forward` and `kf exec` both take (one wording for both). */
export const FORWARD_OPTION_HELP = {
  address: "local addresses to listen on, comma-separated (default: localhost = 127.0.0.1 and ::1)",
  transport:
    "auto (WebSocket, then pooled SPDY for HTTP; SPDY when RBAC allows only create), websocket or spdy",
  protocol: "auto (HTTP/1.x handled per request, anything else TCP), http or tcp",
  balance: "HTTP requests: sticky (one pod while ready) or round-robin",
  podWaitTimeout: "how long a new connection waits for a ready pod (e.g. 30s)",
  streamIdleTimeout:
    "shortest idle timeout on the way to pods (kubelet, load balancer); idle connections get " +
    "keep-alive traffic at a third of it (default 5m)",
} as const;
