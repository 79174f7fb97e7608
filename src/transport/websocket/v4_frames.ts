/** Framing of the `v4.channel.k8s.io` port-forward protocol for one port: channel 0 = data, 1 = error. */

export const PORT_FORWARD_PROTOCOL = "v4.channel.k8s.io";

export const DATA_CHANNEL = 0;
const ERROR_CHANNEL = 1;
/** The kubelet opens each channel with the port number as uint16 little-endian. */
const PORT_PREFIX_BYTES = 2;

export type DecodedFrame =
  | { kind: "data"; payload: Uint8Array }
  | { kind: "error"; message: string }
  // a channel we did not ask for; ignored but reported for debugging
  | { kind: "unknown"; channel: number };

/** Builds the message that carries local bytes to the pod's data channel. */
export function encodeData(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(payload.length + 1);
  frame[0] = DATA_CHANNEL;
  frame.set(payload, 1);
  return frame;
}

/**
 * Decodes messages of one port-forward WebSocket. Stateful: the 2-byte port prefix that starts each
 * channel may arrive split over several messages and is stripped wherever it lands.
 */
export class PortForwardDecoder {
  readonly #prefixLeft = new Map<number, number>([[DATA_CHANNEL, PORT_PREFIX_BYTES], [
    ERROR_CHANNEL,
    PORT_PREFIX_BYTES,
  ]]);
  #errorText = "";
  readonly #textDecoder = new TextDecoder();

  /** Returns what the message means; empty payloads (a prefix alone) decode to nothing. */
  decode(message: Uint8Array): DecodedFrame | undefined {
    if (message.length === 0) return undefined;
    const channel = message[0];
    let payload = message.subarray(1);
    const prefixLeft = this.#prefixLeft.get(channel);
    if (prefixLeft === undefined) return { kind: "unknown", channel };
    if (prefixLeft > 0) {
      const strip = Math.min(prefixLeft, payload.length);
      this.#prefixLeft.set(channel, prefixLeft - strip);
      payload = payload.subarray(strip);
    }
    if (payload.length === 0) return undefined;
    if (channel === DATA_CHANNEL) return { kind: "data", payload };
    // error text may come in pieces; report the whole text seen so far
    this.#errorText += this.#textDecoder.decode(payload, { stream: true });
    return { kind: "error", message: this.#errorText };
  }
}
