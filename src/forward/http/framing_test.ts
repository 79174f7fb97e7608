import assert from "node:assert/strict";
import {
  FramingError,
  type Head,
  isReplayable,
  parseRequestHead,
  parseResponseHead,
  pathOf,
  type Piece,
  RequestFramer,
  type RequestHead,
  ResponseFramer,
  type ResponseHead,
  sniffProtocol,
} from "./framing.ts";

/** Latin-1 bytes, so test inputs can hold any byte value. */
const enc = { encode: (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0)) };
const dec = new TextDecoder("latin1");

/** A readable transcript of pieces: consecutive body/opaque bytes merged, so any split gives the same text. */
function transcript<H extends Head>(pieces: Piece<H>[]): string[] {
  const out: string[] = [];
  for (const piece of pieces) {
    let line: string;
    if (piece.kind === "head") {
      const head = piece.head as unknown as RequestHead & ResponseHead;
      line = `head ${head.method ?? head.status}`;
    } else if (piece.kind === "end") line = "end";
    else line = `${piece.kind} ${dec.decode(piece.bytes)}`;
    const last = out[out.length - 1];
    const kind = line.split(" ")[0];
    if ((kind === "body" || kind === "opaque") && last?.startsWith(kind + " ")) {
      out[out.length - 1] = last + line.slice(kind.length + 1);
    } else out.push(line);
  }
  return out;
}

function requests(chunks: string[]): string[] {
  const framer = new RequestFramer();
  return transcript(chunks.flatMap((c) => framer.push(enc.encode(c))));
}

function responses(methods: string[], chunks: string[], serverCloses = false): string[] {
  const framer = new ResponseFramer();
  for (const m of methods) framer.expect(m);
  const pieces = chunks.flatMap((c) => framer.push(enc.encode(c)));
  if (serverCloses) pieces.push(...framer.end());
  return transcript(pieces);
}

/** Every split of the input into two reads, and one byte per read, frame exactly like one read. */
function assertSplitInvariant(run: (chunks: string[]) => string[], input: string): string[] {
  const whole = run([input]);
  for (let at = 0; at <= input.length; at++) {
    assert.deepEqual(run([input.slice(0, at), input.slice(at)]), whole, `split at ${at}`);
  }
  assert.deepEqual(run([...input]), whole, "one byte per read");
  return whole;
}

Deno.test("requests: Content-Length, no body and pipelining frame the same at every byte boundary", () => {
  const input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
    "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" +
    "DELETE /c HTTP/1.1\r\nHost: x\r\n\r\n";
  const whole = assertSplitInvariant(requests, input);
  assert.deepEqual(whole, [
    "head GET",
    "end",
    "head POST",
    "body hello",
    "end",
    "head DELETE",
    "end",
  ]);
});

Deno.test("requests: chunked body with extensions and trailers ends after the trailer block", () => {
  const body = "5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n";
  const input =
    `PUT /up HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${body}GET /next HTTP/1.1\r\n\r\n`;
  const whole = assertSplitInvariant(requests, input);
  assert.deepEqual(whole, ["head PUT", `body ${body}`, "end", "head GET", "end"]);
});

Deno.test("requests: chunked body without trailers, bare LF line ends, and upper-case hex", () => {
  const body = "A\r\n0123456789\r\n0\r\n\r\n";
  const input = `POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n${body}`;
  const whole = assertSplitInvariant(requests, input);
  assert.deepEqual(whole, ["head POST", `body ${body}`, "end"]);
});

Deno.test("requests: blank lines between requests are skipped", () => {
  assert.deepEqual(requests(["\r\nGET / HTTP/1.1\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"]), [
    "head GET",
    "end",
    "head GET",
    "end",
  ]);
});

Deno.test("requests: Expect 100-continue frames like any request with a body", () => {
  const input = "POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
  assert.deepEqual(assertSplitInvariant(requests, input), ["head POST", "body abc", "end"]);
});

Deno.test("requests: bytes after an Upgrade request are held until the answer is known", () => {
  const framer = new RequestFramer();
  const first = transcript(
    framer.push(enc.encode("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nFRAME1")),
  );
  assert.deepEqual(first, ["head GET", "end"]);
  assert.deepEqual(framer.push(enc.encode("FRAME2")), []);
  const held = framer.switched().map((b) => dec.decode(b));
  assert.deepEqual(held, ["FRAME1", "FRAME2"]);
  assert.deepEqual(transcript(framer.push(enc.encode("GET / HTTP/1.1\r\n\r\n"))), [
    "opaque GET / HTTP/1.1\r\n\r\n",
  ]);
});

Deno.test("requests: a refused Upgrade goes on framing the held bytes as requests", () => {
  const framer = new RequestFramer();
  framer.push(
    enc.encode("GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nGET /next HTTP/1.1\r\n\r\n"),
  );
  assert.deepEqual(transcript(framer.notSwitched()), ["head GET", "end"]);
  assert.equal(framer.idle, true);
});

Deno.test("requests: malformed input is a FramingError, not a crash", () => {
  assert.throws(() => requests(["GET / HTTP/2.0\r\n\r\n"]), FramingError);
  assert.throws(() => requests(["GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n"]), FramingError);
  assert.throws(() => requests(["GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"]), FramingError);
  assert.throws(() => requests(["GET / HTTP/1.1\r\nno colon\r\n\r\n"]), FramingError);
  assert.throws(
    () => requests(["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]),
    FramingError,
  );
  assert.throws(
    () => requests(["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"]),
    FramingError,
  );
  assert.throws(() => requests(["GET / HTTP/1.1\r\nX: " + "a".repeat(70_000)]), FramingError);
});

Deno.test("heads: framing fields in any case, repeated ones joined, values trimmed, other headers unread", () => {
  const [piece] = new RequestFramer().push(
    enc.encode(
      "POST /x?y HTTP/1.1\r\nCONTENT-length:  12 \r\nX-Other: 1\r\nconnection: keep-alive\r\n" +
        "Connection:\tUpgrade\r\nUpgrade: h2c\r\nIdempotency-Key: k\r\nTransfer-Encodings: no\r\n\r\n",
    ),
  );
  assert(piece.kind === "head");
  const head = piece.head;
  assert.equal(head.method, "POST");
  assert.equal(head.target, "/x?y");
  assert.equal(head.minor, 1);
  assert.deepEqual({ ...head.fields }, {
    contentLength: "12",
    transferEncoding: undefined,
    connection: "keep-alive, Upgrade",
    upgrade: "h2c",
    idempotencyKey: "k",
  });
  const response = parseResponseHead(enc.encode("HTTP/1.0 204\r\nTransfer-Encoding: chunked\r\n\r\n"));
  assert.deepEqual([response.status, response.minor, response.fields.transferEncoding], [204, 0, "chunked"]);
  // non-ASCII bytes in a target are decoded as UTF-8, as before
  assert.equal(parseRequestHead(enc.encode("GET /\xc3\xa9 HTTP/1.1\r\n\r\n")).target, "/\u00e9");
});

Deno.test("heads: malformed request, status and header lines are FramingErrors", () => {
  const request = (s: string) => () => parseRequestHead(enc.encode(s));
  const response = (s: string) => () => parseResponseHead(enc.encode(s));
  for (
    const bad of [
      "GET  / HTTP/1.1\r\n\r\n",
      "GET /a\tb HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n",
      "GET / HTTP/1.10\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET / HTTP/1.1\r\n: x\r\n\r\n",
      "GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
    ]
  ) assert.throws(request(bad), FramingError, JSON.stringify(bad));
  for (
    const bad of [
      "HTTP/1.1 20\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 2x0\r\n\r\n",
    ]
  ) {
    assert.throws(response(bad), FramingError, JSON.stringify(bad));
  }
  assert.equal(parseResponseHead(enc.encode("HTTP/1.1 200\r\n\r\n")).status, 200);
  assert.equal(parseResponseHead(enc.encode("HTTP/1.1 404 Not Found\n\n")).status, 404);
});

Deno.test("requests: heads kept from earlier reads stay intact while later heads are copied", () => {
  const framer = new RequestFramer();
  const heads: RequestHead[] = [];
  for (let i = 0; i < 200; i++) {
    const read = enc.encode(`GET /${i} HTTP/1.1\r\nHost: h${"x".repeat(i % 37)}\r\n\r\n`);
    for (const piece of framer.push(read)) if (piece.kind === "head") heads.push(piece.head);
    read.fill(0); // the caller reuses its read buffer
  }
  heads.forEach((head, i) => {
    assert.equal(dec.decode(head.raw), `GET /${i} HTTP/1.1\r\nHost: h${"x".repeat(i % 37)}\r\n\r\n`);
  });
});

Deno.test("responses: Content-Length, chunked and 204 frame the same at every byte boundary", () => {
  const input = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" +
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nT: v\r\n\r\n" +
    "HTTP/1.1 204 No Content\r\n\r\n";
  const whole = assertSplitInvariant((c) => responses(["GET", "GET", "DELETE"], c), input);
  assert.deepEqual(whole, [
    "head 200",
    "body abc",
    "end",
    "head 200",
    "body 3\r\nxyz\r\n0\r\nT: v\r\n\r\n",
    "end",
    "head 204",
    "end",
  ]);
});

Deno.test("responses: HEAD and 304 have no body even with a Content-Length", () => {
  const input =
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n";
  const whole = assertSplitInvariant((c) => responses(["HEAD", "GET"], c), input);
  assert.deepEqual(whole, ["head 200", "end", "head 304", "end"]);
});

Deno.test("responses: 100 Continue is interim, the final response to the same request follows", () => {
  const input = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
    "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  const framer = new ResponseFramer();
  framer.expect("POST");
  const kinds: string[] = [];
  for (const piece of framer.push(enc.encode(input))) {
    if (piece.kind === "head") kinds.push(piece.head.meaning);
  }
  assert.deepEqual(kinds, ["interim", "interim", "final"]);
  assert.equal(framer.pending, 0);
  assert.deepEqual(assertSplitInvariant((c) => responses(["POST"], c), input), [
    "head 100",
    "end",
    "head 103",
    "end",
    "head 201",
    "body ok",
    "end",
  ]);
});

Deno.test("responses: without length or chunked the body runs until the server closes", () => {
  const input = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\neverything until EOF";
  const whole = assertSplitInvariant((c) => responses(["GET"], c, true), input);
  assert.deepEqual(whole, ["head 200", "body everything until EOF", "end"]);
  const framer = new ResponseFramer();
  framer.expect("GET");
  framer.push(enc.encode(input));
  assert.equal(framer.closeDelimited, true);
});

Deno.test("responses: 101 switches to opaque bytes right after its head", () => {
  const input =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
  const framer = new ResponseFramer();
  framer.expect("GET");
  const pieces = framer.push(enc.encode(input));
  assert.equal(pieces[0].kind === "head" && pieces[0].head.meaning, "switch");
  assert.deepEqual(transcript(pieces), ["head 101", "end", "opaque \x81\x02hi"]);
  assert.deepEqual(assertSplitInvariant((c) => responses(["GET"], c), input), transcript(pieces));
});

Deno.test("responses: a 2xx to CONNECT is a tunnel, a 4xx to CONNECT is not", () => {
  assert.deepEqual(responses(["CONNECT"], ["HTTP/1.1 200 OK\r\n\r\nraw"]), ["head 200", "end", "opaque raw"]);
  assert.deepEqual(responses(["CONNECT"], ["HTTP/1.1 407 No\r\nContent-Length: 1\r\n\r\nx"]), [
    "head 407",
    "body x",
    "end",
  ]);
});

Deno.test("responses: bytes without a request are a FramingError", () => {
  assert.throws(() => responses([], ["HTTP/1.1 200 OK\r\n\r\n"]), FramingError);
  assert.throws(() => responses(["GET"], ["SSH-2.0-OpenSSH\r\n\r\n"]), FramingError);
});

Deno.test("sniff: HTTP/1.x request lines are http; TLS, HTTP/2, databases are tcp", () => {
  const sniff = (s: string | number[]) =>
    sniffProtocol(typeof s === "string" ? enc.encode(s) : new Uint8Array(s));
  assert.equal(sniff("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "http");
  assert.equal(sniff("OPTIONS * HTTP/1.0\n"), "http");
  assert.equal(sniff("POST /api?q=1 HTTP/1.1\r"), "http");
  assert.equal(sniff("GET / HTT"), "more");
  assert.equal(sniff("GE"), "more");
  assert.equal(sniff(""), "more");
  assert.equal(sniff("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "tcp");
  assert.equal(sniff([0x16, 0x03, 0x01, 0x02, 0x00]), "tcp"); // TLS ClientHello
  assert.equal(sniff([0, 0, 0, 8, 4, 210, 22, 47]), "tcp"); // PostgreSQL SSLRequest
  assert.equal(sniff("PING\r\n"), "tcp"); // Redis inline
  assert.equal(sniff("*1\r\n$4\r\nPING\r\n"), "tcp"); // Redis RESP
  assert.equal(sniff("SET a b\r\n"), "tcp");
  assert.equal(sniff("GET /x HTTP/1.1 extra\r\n"), "tcp");
});

Deno.test("replay: idempotent methods and requests with an Idempotency-Key may be resent", () => {
  const head = (s: string) => parseRequestHead(enc.encode(s));
  for (const m of ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]) {
    assert.equal(isReplayable(head(`${m} / HTTP/1.1\r\n\r\n`)), true, m);
  }
  assert.equal(isReplayable(head("POST / HTTP/1.1\r\n\r\n")), false);
  assert.equal(isReplayable(head("PATCH / HTTP/1.1\r\n\r\n")), false);
  assert.equal(isReplayable(head("POST / HTTP/1.1\r\nIdempotency-Key: abc\r\n\r\n")), true);
});

Deno.test("request log path: no query, no fragment, no scheme and host", () => {
  assert.equal(pathOf("/a/b?token=secret"), "/a/b");
  assert.equal(pathOf("/a#frag"), "/a");
  assert.equal(pathOf("http://host:80/p?q"), "/p");
  assert.equal(pathOf("http://host"), "/");
  assert.equal(pathOf("*"), "*");
});
