import assert from "node:assert/strict";
import { ApiError, ApiUnreachableError, KubeconfigError } from "../kube/errors.ts";
import { classifyDialFailure } from "./dial_retry.ts";
import { SpdyConnectionClosedError } from "../transport/mod.ts";

const SERVER = "https://127.0.0.1:6443";

Deno.test("classifyDialFailure() waits out a refused, reset or silent API server", () => {
  for (const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ERR_TLS_CERT_ALTNAME_INVALID"]) {
    assert.equal(classifyDialFailure(new ApiUnreachableError(SERVER, code, "boom")), "transient", code);
  }
  // ws reports a handshake timeout without a code
  assert.equal(
    classifyDialFailure(new ApiUnreachableError(SERVER, undefined, "Opening handshake has timed out")),
    "transient",
  );
});

Deno.test("classifyDialFailure() waits out throttling and 5xx (etcd errors surface as 500)", () => {
  for (const status of [408, 429, 500, 502, 503, 504]) {
    assert.equal(classifyDialFailure(new ApiError(status, "etcdserver: request timed out")), "transient");
  }
});

Deno.test("classifyDialFailure() fails at once on a definitive answer", () => {
  for (const status of [400, 401, 403, 405, 422, 501]) {
    assert.equal(classifyDialFailure(new ApiError(status, "no")), "final", String(status));
  }
  assert.equal(classifyDialFailure(new KubeconfigError("exec plugin failed")), "final");
  assert.equal(classifyDialFailure(new RangeError("Cannot forward port 0: not a TCP port")), "final");
});

Deno.test("classifyDialFailure() moves on to another pod when the pod is gone or was abandoned", () => {
  assert.equal(classifyDialFailure(new ApiError(404, 'pods "x" not found')), "pod-gone");
  // kf aborted the dial itself because the pod stopped being ready: whatever the error says
  assert.equal(classifyDialFailure(new ApiError(403, "forbidden"), true), "pod-gone");
});

Deno.test("classifyDialFailure() retries a pooled SPDY connection that died under the dial", () => {
  assert.equal(classifyDialFailure(new SpdyConnectionClosedError("connection lost")), "transient");
});
