import assert from "node:assert/strict";
import { classifyPodError } from "../errors.ts";
import { encodeData, PortForwardDecoder } from "./v4_frames.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (value: string) => new TextEncoder().encode(value);

Deno.test("PortForwardDecoder strips the port prefix of each channel", () => {
  const decoder = new PortForwardDecoder();
  assert.equal(decoder.decode(bytes(0, 0x90, 0x1f)), undefined);
  assert.equal(decoder.decode(bytes(1, 0x90, 0x1f)), undefined);
  assert.deepEqual(decoder.decode(bytes(0, 104, 105)), { kind: "data", payload: bytes(104, 105) });
});

Deno.test("PortForwardDecoder strips a prefix split over two messages", () => {
  const decoder = new PortForwardDecoder();
  assert.equal(decoder.decode(bytes(0, 0x90)), undefined);
  assert.deepEqual(decoder.decode(bytes(0, 0x1f, 65)), { kind: "data", payload: bytes(65) });
  assert.deepEqual(decoder.decode(bytes(0, 0x90, 0x1f)), { kind: "data", payload: bytes(0x90, 0x1f) });
});

Deno.test("PortForwardDecoder keeps data that follows the prefix in the same message", () => {
  const decoder = new PortForwardDecoder();
  assert.deepEqual(decoder.decode(bytes(0, 1, 2, 3, 4)), { kind: "data", payload: bytes(3, 4) });
});

Deno.test("PortForwardDecoder reports error text, joined across messages", () => {
  const decoder = new PortForwardDecoder();
  decoder.decode(bytes(1, 0x90, 0x1f));
  assert.deepEqual(decoder.decode(new Uint8Array([1, ...text("error forwarding ")])), {
    kind: "error",
    message: "error forwarding ",
  });
  assert.deepEqual(decoder.decode(new Uint8Array([1, ...text("port 8080")])), {
    kind: "error",
    message: "error forwarding port 8080",
  });
});

Deno.test("PortForwardDecoder flags channels of other ports as unknown", () => {
  const decoder = new PortForwardDecoder();
  assert.deepEqual(decoder.decode(bytes(2, 0, 0, 9)), { kind: "unknown", channel: 2 });
  assert.equal(decoder.decode(new Uint8Array()), undefined);
});

Deno.test("encodeData prefixes the data channel", () => {
  assert.deepEqual(encodeData(bytes(7, 8)), bytes(0, 7, 8));
});

Deno.test("classifyPodError tells a vanished pod from an unreachable port", () => {
  assert.equal(classifyPodError('failed to find sandbox "abc" in store: not found'), "pod-gone");
  assert.equal(
    classifyPodError('error forwarding port 8080 to pod x: network namespace for sandbox "a" is closed'),
    "pod-gone",
  );
  assert.equal(classifyPodError("pod default/echo-1 not found"), "pod-gone");
  assert.equal(
    classifyPodError(
      "error forwarding port 81 to pod x, uid y: failed to connect to localhost:81: connection refused",
    ),
    "port-unreachable",
  );
});
