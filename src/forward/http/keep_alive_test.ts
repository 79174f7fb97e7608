import assert from "node:assert/strict";
import { parseRequestHead, wantsClose } from "./framing.ts";
import { keepAliveHead } from "./keep_alive.ts";

const head = (text: string) => parseRequestHead(new TextEncoder().encode(text));
const upstream = (text: string) => new TextDecoder().decode(keepAliveHead(head(text)));

Deno.test("keepAliveHead(): a head that keeps the connection goes upstream as it is (the same bytes)", () => {
  const request = head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(keepAliveHead(request), request.raw);
  const asked = head("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
  assert.equal(keepAliveHead(asked), asked.raw);
});

Deno.test("keepAliveHead(): HTTP/1.1 `Connection: close` loses its close option, other options stay", () => {
  assert.equal(
    upstream("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAccept: */*\r\n\r\n"),
    "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
  );
  assert.equal(
    upstream("GET /x HTTP/1.1\r\nconnection: Close, X-Trace\r\nX-Trace: 1\r\n\r\n"),
    "GET /x HTTP/1.1\r\nConnection: X-Trace\r\nX-Trace: 1\r\n\r\n",
  );
  assert.equal(wantsClose(head(upstream("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))), false);
});

Deno.test("keepAliveHead(): an HTTP/1.0 request asks for keep-alive (as ApacheBench without -k sends it)", () => {
  const sent = upstream(
    "GET / HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n",
  );
  assert.equal(
    sent,
    "GET / HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
  );
  const parsed = head(sent);
  assert.equal(parsed.minor, 0);
  assert.equal(wantsClose(parsed), false);
  // bare LF line ends, and a 1.0 close
  assert.equal(
    upstream("GET / HTTP/1.0\nConnection: close\n\n"),
    "GET / HTTP/1.0\nConnection: keep-alive\n\n",
  );
});

Deno.test("keepAliveHead(): upgrade requests and header bytes above 0x7f pass unchanged", () => {
  const upgrade = head("GET /ws HTTP/1.1\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n");
  assert.equal(keepAliveHead(upgrade), upgrade.raw);
  const raw = new Uint8Array([
    ...new TextEncoder().encode("GET / HTTP/1.1\r\nX-Name: "),
    0xe9,
    0x80,
    ...new TextEncoder().encode("\r\nConnection: close\r\n\r\n"),
  ]);
  const out = keepAliveHead(parseRequestHead(raw));
  assert.deepEqual([...out.subarray(24, 26)], [0xe9, 0x80]);
  assert.equal(out.length, raw.length - "Connection: close\r\n".length);
});
