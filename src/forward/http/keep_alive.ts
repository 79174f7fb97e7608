/**
 * A request head for kf's hop to the pod that keeps that connection open, whatever the client's hop does.
 * `Connection` is hop-by-hop (RFC 9110 7.6.1): a client's `Connection: close` (or an HTTP/1.0 request
 * without keep-alive) is about its connection to kf, which kf closes after the response as asked. Toward
 * the pod, kf drops the `close` option and asks an HTTP/1.0 server for keep-alive, so the upstream can carry
 * the next connection's request (src/forward/http/kept_upstreams.ts). A server that still wants to close
 * says so in its response, and that upstream is then not kept.
 */

import { asksForSwitch, type RequestHead, wantsClose } from "./framing.ts";

/** The head to send upstream: `head.raw` itself when it already keeps the connection (the usual case). */
export function keepAliveHead(head: RequestHead): Uint8Array {
  if (!wantsClose(head) || asksForSwitch(head)) return head.raw;
  const text = latin1(head.raw);
  const lines = text.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    // the request line (i = 0) and the blank line at the end pass as they are
    if (i > 0 && colon > 0 && line.slice(0, colon).trim().toLowerCase() === "connection") {
      const ending = line.endsWith("\r") ? "\r" : "";
      const options = line.slice(colon + 1, line.length - ending.length).split(",").map((t) => t.trim())
        .filter((t) => t !== "" && !/^(close|keep-alive)$/i.test(t));
      if (options.length > 0) out.push(`Connection: ${options.join(", ")}${ending}`);
      continue;
    }
    out.push(line);
  }
  if (head.minor === 0) {
    // before the blank line: split on LF, a head ending in CRLF CRLF leaves "\r" and "" as its last entries
    const blank = out.length - 2;
    const ending = out[blank - 1]?.endsWith("\r") ? "\r" : "";
    out.splice(blank, 0, `Connection: keep-alive${ending}`);
  }
  return bytesOf(out.join("\n"));
}

/** Bytes as characters one to one (header bytes above 0x7f pass through unchanged). */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

function bytesOf(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
