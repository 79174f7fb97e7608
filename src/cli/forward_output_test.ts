import assert from "node:assert/strict";
import type { ForwardStatus } from "../forward/status.ts";
import { formatEventJson, formatRequestLine, renderForwardTable } from "./forward_output.ts";

const status = (extra: Partial<ForwardStatus> = {}): ForwardStatus => ({
  name: "api",
  target: "svc/api",
  context: "dev",
  namespace: "default",
  listeners: [{ address: "127.0.0.1", port: 8080, remote: 80 }],
  state: "ready",
  pod: "api-1",
  openConnections: 1,
  totalConnections: 3,
  bytesIn: 0,
  bytesOut: 0,
  ...extra,
});

Deno.test("the live table shows requests/s and the 5xx count of HTTP forwards, '-' for TCP ones", () => {
  const table = renderForwardTable(
    [status({ requests: 120, serverErrors: 2 }), status({ name: "db", requests: 0 })],
    200,
    new Map([["api", 12.5]]),
  );
  const [header, api, db] = table.trim().split("\n");
  assert.match(header, /REQ\/S\s+5XX/);
  assert.match(api, /12\.5\s+2\s*$/);
  assert.match(db, /-\s+-\s*$/);
});

Deno.test("a request is one text line and one NDJSON event, without header values or query", () => {
  const request = {
    method: "GET",
    path: "/users",
    status: 200,
    pod: "api-1",
    durationMs: 3.2,
    bytesOut: 78,
    bytesIn: 1200,
  };
  assert.equal(formatRequestLine("api", request), "api GET /users 200 pod=api-1 3.2ms out=78B in=1.2KiB");
  const event = JSON.parse(formatEventJson({ type: "request", forward: "api", request }));
  assert.deepEqual({ ...event, time: undefined }, {
    time: undefined,
    event: "request",
    forward: "api",
    ...request,
  });
});
